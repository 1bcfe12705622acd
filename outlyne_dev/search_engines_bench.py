"""How the search chain copes when its first engine fails, and what a cache hit costs.

`python -m outlyne_dev.search_engines_bench [--json] [--out benchmarks/bench-search-engines.json]`
(from a source checkout: it uses the local API stand-ins in tests/support/engine_servers.py).

Every engine here is a real engine client (Openverse first, Wikimedia Commons second) talking HTTP to a
stand-in on 127.0.0.1, so the figures include connection set-up, JSON parsing and the chain's bookkeeping,
but no internet latency:

- `refused_first_ms`: the first engine's port refuses connections; time until the second engine's results.
- `hanging_first_ms`: the first engine accepts and never answers; time until the second engine's results
  while its breaker is still closed (the engine's own timeout is paid: the default, 6 s, unless changed).
- `hanging_first_breaker_open_ms`: the same once the breaker has opened (three failures): skipped at once.
- `second_alone_ms`: the second engine on its own, for comparison.
- `cache_hit_ms`: the same search again, answered from the on-disk result cache, in the same chain;
  `cache_hit_new_chain_ms`: in a new chain over the same cache file (a restart, or another process).
  Target: < 50 ms before re-ranking.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from outlyne.search.breaker import Breaker
from outlyne.search.cache import ResultCache
from outlyne.search.chain import SearchAnswer, SearchChain
from outlyne.search.engines import openverse, wikimedia
from outlyne.search.engines.http import Pacer
from outlyne.search.types import SearchRequest
from tests.support.engine_servers import CommonsApi, EngineServer, Reply, Seen, refused_url


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _timed(chain: SearchChain, query: str) -> tuple[float, SearchAnswer]:
    start = time.perf_counter()
    answer = chain.answer(SearchRequest(query, max_results=30))
    return time.perf_counter() - start, answer


def _first_engine(base_url: str, timeout: float) -> openverse.Engine:
    # Unpaced: the stand-in has no throttle, and pacing would be measured instead of the fallback.
    return openverse.Engine(base_url=base_url, timeout=timeout, pacer=Pacer(0))


def _fallback_times(chain: SearchChain, prefix: str, runs: int) -> list[float]:
    samples = [_timed(chain, f"{prefix} {i}") for i in range(runs)]
    if not all(answer.engine == "wikimedia" for _, answer in samples):
        raise RuntimeError(f"{prefix}: the second engine did not answer: {samples[0][1].attempts}")
    return [seconds for seconds, _ in samples]


def measure(*, repeats: int = 7, hang_timeout: float = 6.0, hang_repeats: int = 3) -> dict[str, Any]:
    release = threading.Event()

    def hanging(seen: Seen) -> Reply:
        return Reply(200, {"results": []}, hang=release)

    figures: dict[str, Any] = {
        "repeats": repeats,
        "hang_repeats": hang_repeats,
        "hang_timeout_s": hang_timeout,
    }
    with EngineServer(CommonsApi(available=30)) as commons, EngineServer(hanging) as stuck:
        second = wikimedia.Engine(api_url=commons.url("/w/api.php"))

        def closed_breakers() -> dict[str, Breaker]:  # never open: every search pays the failure
            return {name: Breaker(threshold=10**9) for name in ("openverse", "wikimedia")}

        try:
            refused = SearchChain(
                [_first_engine(refused_url(), hang_timeout), second], breakers=closed_breakers()
            )
            figures["refused_first_ms"] = _median_ms(_fallback_times(refused, "cat", repeats))

            hung = SearchChain(
                [_first_engine(stuck.base_url, hang_timeout), second], breakers=closed_breakers()
            )
            figures["hanging_first_ms"] = _median_ms(_fallback_times(hung, "dog", hang_repeats))

            opening = SearchChain([_first_engine(stuck.base_url, hang_timeout), second])  # default breakers
            _fallback_times(opening, "bird", 3)  # three failures in a row open the first engine's breaker
            figures["hanging_first_breaker_open_ms"] = _median_ms(_fallback_times(opening, "fish", repeats))

            figures["second_alone_ms"] = _median_ms(_fallback_times(SearchChain([second]), "cow", repeats))

            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "search-results.sqlite3"
                cached = SearchChain([second], cache=ResultCache(path))
                _timed(cached, "horse")
                before = len(commons.requests)
                hits = [_timed(cached, "horse") for _ in range(repeats * 3)]
                restarts = []
                for _ in range(repeats):
                    other = SearchChain([second], cache=ResultCache(path))  # a new process, same file
                    restarts.append(_timed(other, "horse"))
                    other.close()
                cached.close()
                if len(commons.requests) != before or not all(a.cached for _, a in hits + restarts):
                    raise RuntimeError("a repeated search was not answered from the cache")
                figures["cache_hit_ms"] = _median_ms([s for s, _ in hits])
                figures["cache_hit_new_chain_ms"] = _median_ms([s for s, _ in restarts])
        finally:
            release.set()
    figures["machine"] = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    return figures


def to_markdown(figures: dict[str, Any]) -> str:
    rows = [
        ("first engine refuses the connection: results from the second", "refused_first_ms"),
        (
            f"first engine hangs (timeout {figures['hang_timeout_s']:g} s): results from the second",
            "hanging_first_ms",
        ),
        ("first engine hangs, its breaker open: results from the second", "hanging_first_breaker_open_ms"),
        ("second engine alone", "second_alone_ms"),
        ("cache hit, same chain", "cache_hit_ms"),
        ("cache hit, new chain on the same cache file", "cache_hit_new_chain_ms"),
    ]
    lines = ["| search | median |", "| --- | ---: |"]
    lines += [f"| {label} | {figures[key]:.1f} ms |" for label, key in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outlyne_dev.search_engines_bench", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--hang-timeout", type=float, default=6.0, help="the first engine's timeout, s")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    figures = measure(repeats=args.repeats, hang_timeout=args.hang_timeout)
    figures["command"] = "python -m outlyne_dev.search_engines_bench " + " ".join(argv or sys.argv[1:])
    text = json.dumps(figures, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text if args.json else to_markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
