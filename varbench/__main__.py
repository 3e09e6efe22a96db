"""``python -m varbench`` (what torchrun launches: ``torchrun ... -m varbench generate ...``)."""

from varbench.cli.app import main

main()
