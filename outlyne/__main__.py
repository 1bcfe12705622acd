"""`python -m outlyne COMMAND ...`: export, embed, interrogate, search, index, eval, bench."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import OutlyneError

# Modules under outlyne/commands, in the order `--help` lists them. Each is imported only when present
# so a command's heavy imports never slow the others down.
COMMANDS = ("export", "embed", "interrogate", "search", "index", "eval", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m outlyne",
        description="Outlyne: recognize a sketch and find images that look like it.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"outlyne.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"outlyne.commands.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OutlyneError as error:
        print(f"outlyne: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("outlyne: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
