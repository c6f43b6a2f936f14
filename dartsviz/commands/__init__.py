"""Subcommands of the `dartsviz` command, one per file."""
