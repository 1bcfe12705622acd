"""CLI subcommands: one module each, each exposing `register(subparsers)` that sets `func` on its parser.

`func(args) -> int` returns the exit code; user-facing failures raise OutlyneError, which __main__ prints
as one line.
"""
