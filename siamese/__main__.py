"""`python -m siamese ...`: the CLI, for launchers that run modules (`torchrun -m`, service managers)."""

from siamese.cli.app import main

if __name__ == "__main__":
    main()
