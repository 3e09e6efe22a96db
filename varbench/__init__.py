"""varbench: benchmark class-conditional ImageNet generators (VAR next-scale vs raster-scan AR).

Importing varbench is cheap and changes no global state (no TF32 flags, no patched initialisers).
"""

__version__ = "0.1.0"

from varbench.errors import VarbenchError  # noqa: E402

__all__ = ["VarbenchError", "__version__"]

# The public API, imported lazily so ``import varbench`` stays cheap (no torch):
#   varbench.zoo.get(name) / names()            model zoo (GeneratorSpec)
#   varbench.generator.build(spec, ...)         -> Generator: generate(labels, seeds) -> uint8 NHWC
#   varbench.sampler                            resumable, sharded 50k sampling (varbench generate)
#   varbench.evaluate                           ADM-protocol FID/sFID/IS/P&R/KID (varbench fid)
#   varbench.speed                              next-scale vs raster decoding study (varbench speed)
#   varbench.results / varbench.report          result schema, tables and regression comparison
