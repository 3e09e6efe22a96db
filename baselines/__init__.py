"""The raster-scan baseline, pure torch: LlamaGen's c2i GPT and VQ-16 tokenizer (released checkpoints load strictly),
their token-by-token sampler, and the raster twins of VAR.  Installed as ``varbench.baselines``."""
