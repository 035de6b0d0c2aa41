"""The `siamese` command line (the design card's "cli"): a Typer app in `siamese.cli.app`."""
