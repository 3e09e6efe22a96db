"""varbench: benchmark class-conditional ImageNet generators (VAR next-scale vs raster-scan AR).

Importing varbench is cheap and changes no global state (no TF32 flags, no patched initialisers).
"""

__version__ = "0.1.0"

from varbench.errors import VarbenchError  # noqa: E402

__all__ = ["VarbenchError", "__version__"]
