"""`python -m outlyne search-check`: ask each configured web engine once, and say which answer and why not.

What a Space owner runs when image search stops working. It bypasses the result cache and the breakers
(they would hide the engine's current state) and prints one row per engine: answered or why not, latency,
number of results. Exit code 0 when at least one engine answered, 3 when none did.
"""

from __future__ import annotations

import argparse

from outlyne.cli.configured import config_with
from outlyne.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search-check",
        help="try each configured image search engine once and report what happened",
        description="Ask every web engine in OUTLYNE_SEARCH (or --search) once, directly, with a real query.",
    )
    parser.add_argument("--search", help="engines to check, as OUTLYNE_SEARCH (default: its value)")
    parser.add_argument("--query", default=None, help="the query to send (default: 'cat drawing')")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outlyne.errors import OutlyneError
    from outlyne.search.backends import build_web_engines
    from outlyne.search.check import DEFAULT_QUERY, check_engines, format_table

    config = config_with(search=args.search)
    engines, skipped = build_web_engines(config)
    if not engines:
        raise OutlyneError(f"OUTLYNE_SEARCH={config.search!r} names no web engine to check.")
    rows = check_engines(engines, args.query or DEFAULT_QUERY)
    if args.json:
        # print_json: while a --json command runs, print() goes to stderr (outlyne.cli.output).
        print_json({"query": args.query or DEFAULT_QUERY, "engines": [r.to_json() for r in rows]})
    else:
        print(format_table(rows))
        for name in skipped:
            print(f"({name} is a gallery, not a web engine: not checked)")
    return 0 if any(row.answered for row in rows) else 3
