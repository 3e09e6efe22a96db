"""Typer root of the ``varbench`` command.

Each command group lives in its own module with a ``register(app)`` function; modules import only typer and the
standard library at import time (torch is imported inside commands) so ``varbench --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="varbench",
    help="Benchmark class-conditional ImageNet generators: VAR (next-scale) vs raster-scan AR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per command group; each defines register(app).
COMMAND_MODULES = (
    "varbench.cli.zoo",
    "varbench.cli.sample",
    "varbench.cli.eval",
    "varbench.cli.stats",
    "varbench.cli.report",
    "varbench.cli.bench",
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log library progress messages.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
