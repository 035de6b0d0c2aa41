"""The `siamese` command line: a Typer app in `siamese.cli.app`."""
