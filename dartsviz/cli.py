"""The `dartsviz` command. Each subcommand lives in dartsviz/commands/<name>.py and
provides `add_parser(subparsers)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

COMMANDS = ("search", "doctor", "train", "plot", "compare")


class CliError(Exception):
    """An error to report as one line on stderr."""


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
    from .data import DataError
    from .runs import RunDirError
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("dartsviz: interrupted\n")
        return 130
    except OSError as e:      # the run directory or a data file: a path that cannot be used
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"dartsviz {args.command}: error: cannot use{where}: {e.strerror or e}\n")
        return 1
    except (CliError, DataError, RunDirError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.stderr.write(f"dartsviz {args.command}: error: {msg}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
