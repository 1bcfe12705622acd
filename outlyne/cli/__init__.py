"""`python -m outlyne COMMAND ...`: one module per command, each exposing `register(subparsers)` that sets
`func(args) -> int` (the exit code) on its parser. User-facing failures raise OutlyneError, printed as one
line.

The developer commands (`eval`, `bench`) live in outlyne_dev, which a source checkout has and the Space
image does not: there they are listed with a one-line explanation instead of failing on import.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from outlyne.cli.output import stdout_for_json_only
from outlyne.errors import OutlyneError

# (module, name) in the order `--help` lists them. Each is imported only to register its arguments; heavy
# imports happen inside `run`, so a command never slows the others down.
COMMANDS = (
    ("outlyne.cli.export", "export"),
    ("outlyne.cli.embed", "embed"),
    ("outlyne.cli.interrogate", "interrogate"),
    ("outlyne.cli.search", "search"),
    ("outlyne.cli.search_check", "search-check"),
    ("outlyne.cli.index", "index"),
    ("outlyne.cli.serve_encoder", "serve-encoder"),
    ("outlyne_dev.cli_eval", "eval"),
    ("outlyne_dev.cli_bench", "bench"),
)


def _developer_only(name: str):
    def run(args: argparse.Namespace) -> int:
        raise OutlyneError(f"'{name}' is a developer command: run it from a source checkout of Outlyne.")

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m outlyne",
        description="Outlyne: recognize a sketch and find images that look like it.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name, name in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not module_name.startswith("outlyne_dev") or error.name not in ("outlyne_dev", module_name):
                raise
            stub = subparsers.add_parser(name, help="(developer command, not in this install)")
            stub.set_defaults(func=_developer_only(name))
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # `--json` as a flag (eval's `--json OUT` names a file and writes it itself).
        with stdout_for_json_only(getattr(args, "json", None) is True):
            return int(args.func(args) or 0)
    except OutlyneError as error:
        print(f"outlyne: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("outlyne: interrupted", file=sys.stderr)
        return 130
