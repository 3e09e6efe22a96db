"""Zoo entries of the raster-scan baselines (LlamaGen and the raster twins of VAR).

Imported by ``varbench.zoo`` on first use; each entry calls ``varbench.zoo.register``.
"""
