"""`python -m dartsviz ...` is the `dartsviz` command."""
import sys

from .cli import main

sys.exit(main())
