"""``varbench speed``: the study's plan (``plan``), the decoders it times (``decoders``), the runner (``run``), the
summaries and fits (``analysis``), the FLOP formulas (``flops``), the timing primitives (``timing``) and the
efficiency against a same-run matmul peak (``efficiency``)."""
