"""``varbench speed``: the study's plan (``plan``), the decoders it times (``decoders``), the runner (``run``), the
summaries and fits (``analysis``), the FLOP formulas (``flops``) and the timing primitives (``timing``)."""
