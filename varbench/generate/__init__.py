"""``varbench generate``: the sampling plan (``plan``), the output directory and its manifest (``rundir``), the run
loop (``run``), packing into the ADM npz (``pack``) and the torchrun relaunch (``launch``)."""
