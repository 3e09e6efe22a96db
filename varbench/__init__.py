"""varbench: benchmark class-conditional ImageNet generators (VAR next-scale vs raster-scan AR).

Importing varbench is cheap and changes no global state (no TF32 flags, no patched initialisers).
"""

__version__ = "0.1.0"

from varbench.errors import VarbenchError  # noqa: E402

__all__ = ["VarbenchError", "__version__"]

# The public API, imported lazily so ``import varbench`` stays cheap (no torch):
#   varbench.generators.zoo.get(name)           the model zoo (GeneratorSpec)
#   varbench.generators.protocol.build(spec)    -> Generator: generate(labels, seeds) -> uint8 NHWC
#   varbench.generate.run.run(generator, job)   resumable, sharded 50k sampling (varbench generate)
#   varbench.evaluate.score.evaluate(...)       ADM-protocol FID/sFID/IS/P&R/KID (varbench fid)
#   varbench.speed.run.run(SpeedConfig(...))    next-scale vs raster decoding study (varbench speed)
#   varbench.results.load_frame(paths)          results as a pandas DataFrame; varbench.report: tables, compare
