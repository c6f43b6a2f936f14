"""`python -m dartsviz ...` is the `dartsviz` command (torchrun: `torchrun ... -m dartsviz search ...`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
