"""The command line: ``app`` (the Typer root), ``options``, ``render`` (the only rich import) and one module per
command, named after it."""
