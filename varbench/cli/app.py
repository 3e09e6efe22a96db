"""Typer root of the ``varbench`` command.

Each command lives in the module named after it, with a ``register(app)`` function; modules import only typer and
the standard library at import time (torch is imported inside commands), so ``varbench --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging

import typer
from typer.core import TyperGroup

COMMAND_MODULES = (
    "varbench.cli.models",
    "varbench.cli.generate",
    "varbench.cli.fid",
    "varbench.cli.ref",
    "varbench.cli.speed",
    "varbench.cli.report",
    "varbench.cli.compare",
    "varbench.cli.audit",
    "varbench.cli.sweep",
    "varbench.cli.scaling",
    "varbench.cli.edit",
)
_argv: list[str] = []  # the arguments of this invocation (after the program name), for a torchrun relaunch


def invocation_args() -> list[str]:
    """The user's own arguments of the current invocation (``varbench generate ... --nproc 4`` -> everything after
    ``varbench``)."""
    return list(_argv)


class _RecordingGroup(TyperGroup):
    """The root command group; records the arguments it parses (``sys.argv[1:]``, or those ``CliRunner`` passes)."""

    def parse_args(self, ctx, args):
        global _argv
        _argv = list(args)
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RecordingGroup,
    name="varbench",
    help="Benchmark class-conditional ImageNet generators: VAR (next-scale) vs raster-scan AR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log library progress messages.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    from varbench.env import tune_cpu_allocator

    tune_cpu_allocator()  # before torch's first CPU allocation
    app()


if __name__ == "__main__":
    main()
