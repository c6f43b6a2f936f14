"""The `dartsviz` command. Each subcommand lives in dartsviz/commands/<name>.py and
provides `add_parser(subparsers)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from .commands.common import CliError, call  # noqa: F401  (CliError: raised by commands)

COMMANDS = ("search", "doctor", "train", "plot", "compare", "query")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exits 2."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dartsviz", description="Learn, teach and run DARTS.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"dartsviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"dartsviz.commands.{name}").add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return call(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
