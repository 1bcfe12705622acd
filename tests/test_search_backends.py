"""OUTLYNE_SEARCH parsing into a chain, and the chain inside the pipeline: cache hits across two pipeline
objects, attribution and attempts in the API result, plain messages, and `python -m outlyne search-check`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from outlyne.cli import main
from outlyne.concepts.bank import ConceptBank
from outlyne.concepts.file import Concept
from outlyne.config import Config
from outlyne.errors import ConfigError
from outlyne.pipeline import Pipeline, SearchOptions
from outlyne.search.backends import CACHE_FILE, make_backend
from outlyne.search.chain import SearchChain
from outlyne.search.engines import ddg, openverse, searxng, wikimedia
from outlyne.search.galleries.folder import LocalGalleryBackend
from outlyne.search.spec import Step, parse_search
from outlyne.web import format as ui_format
from tests.support.engine_servers import (
    CommonsApi,
    EngineServer,
    OpenverseApi,
    SearxngApi,
    by_path,
    refused_url,
)
from tests.support.fakes import FakeEncoder

# --- parsing ------------------------------------------------------------------------------------------------


def test_default_chain_and_arguments() -> None:
    assert Config().search == "ddg,openverse,wikimedia"
    assert parse_search(" DDG:bing+duckduckgo , searxng:http://127.0.0.1:8888/ ") == [
        Step("ddg", "bing+duckduckgo"),
        Step("searxng", "http://127.0.0.1:8888/"),
    ]
    assert parse_search("none") == []
    # A gallery stands alone, so its folder is taken whole, commas included.
    assert parse_search("local:/data/a,b") == [Step("local", "/data/a,b")]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (
            "bing",
            "'bing' is not a search engine; use ddg, openverse, wikimedia, searxng:URL, local:FOLDER, "
            "milvus:PATH.db|URL, none",
        ),
        ("ddg,searxng", "searxng needs a URL, as in searxng:URL"),
        ("openverse,openverse", "names the same engine twice"),
        ("ddg,local:/x", "cannot be chained"),
        ("milvus:/x.db,ddg", "a Milvus gallery is milvus:PATH.db (milvus-lite) or milvus:http://HOST:PORT"),
        ("ddg,milvus:/x.db", "cannot be chained"),
        ("milvus", "milvus needs a PATH.db|URL"),
        ("openverse:", "empty or unexpected argument"),
        ("searxng:localhost:8888", "searxng takes an http(s) URL, not 'localhost:8888'"),
    ],
)
def test_bad_values_name_the_word_at_fault(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)):
        Config(search=value)


def test_search_settings_from_the_environment() -> None:
    config = Config.from_env(
        {
            "OUTLYNE_SEARCH": "openverse",
            "OUTLYNE_SEARCH_DEADLINE": "4.5",
            "OUTLYNE_SEARCH_CACHE_TTL": "0",
            "OUTLYNE_CONTACT": "ops@example.org",
            "OUTLYNE_OPENVERSE_CLIENT_ID": "app",
            "OUTLYNE_OPENVERSE_CLIENT_SECRET": "s3cret",
        }
    )
    assert (config.search_deadline, config.search_cache_ttl, config.contact) == (4.5, 0.0, "ops@example.org")
    assert config.openverse_client_secret == "s3cret" and "s3cret" not in repr(config)
    with pytest.raises(ConfigError, match="OUTLYNE_SEARCH_DEADLINE must be a number of seconds"):
        Config.from_env({"OUTLYNE_SEARCH_DEADLINE": "soon"})


def test_make_backend_builds_the_chain_in_order(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    config = Config(search="searxng:http://127.0.0.1:1,wikimedia,ddg:bing,openverse", cache_dir=tmp_path)
    chain = make_backend(config, encoder)
    assert isinstance(chain, SearchChain)
    kinds = [type(e) for e in chain.engines]
    assert kinds == [searxng.Engine, wikimedia.Engine, ddg.Engine, openverse.Engine]
    assert chain.engines[2].backends == ("bing",)
    assert chain.cache is not None and chain.cache.path == tmp_path / CACHE_FILE
    assert (chain.supports_text_query, chain.ranks_visually) == (True, False)
    assert make_backend(config.with_options(search_cache_ttl=0), encoder).cache is None
    assert make_backend(Config(search="none"), encoder) is None
    gallery = make_backend(Config(search=f"local:{tmp_path}"), encoder)
    assert isinstance(gallery, LocalGalleryBackend)
    assert (gallery.supports_text_query, gallery.ranks_visually) == (False, True)


def test_openverse_credentials_from_the_config(tmp_path: Path) -> None:
    config = Config(
        search="openverse", cache_dir=tmp_path, openverse_client_id="a", openverse_client_secret="b"
    )
    engine = make_backend(config, FakeEncoder()).engines[0]
    assert engine.page_size == openverse.PAGE_SIZE_AUTHENTICATED


# --- in the pipeline ----------------------------------------------------------------------------------------


def pipeline_for(search: str, cache_dir: Path) -> Pipeline:
    encoder = FakeEncoder()
    bank = ConceptBank.build(
        encoder, (Concept("cat", "animal"), Concept("tree", "nature")), cache_dir=cache_dir
    )
    config = Config(search=search, cache_dir=cache_dir)
    return Pipeline(config, encoder, bank, make_backend(config, encoder))


NO_RERANK = SearchOptions(max_results=10, rerank=False)


def test_second_pipeline_answers_from_the_shared_cache_with_attribution(tmp_path: Path) -> None:
    api = OpenverseApi(available=12)
    with EngineServer(api) as server:
        search = f"openverse:{server.base_url},wikimedia:{refused_url()}/w/api.php"
        first = pipeline_for(search, tmp_path).search(query="cat drawing", options=NO_RERANK)
        second = pipeline_for(search, tmp_path).search(query="cat  drawing", options=NO_RERANK)
    assert [s.path for s in api_requests(server)] == ["/v1/images/"]  # one engine call for both
    assert first.backend == second.backend == "openverse"
    assert [r.title for r in second.results] == [r.title for r in first.results]
    payload = json.loads(json.dumps(second.to_json()))
    assert payload["attempts"] == [
        {
            "engine": "Openverse",
            "status": "answered",
            "detail": "",
            "latency_ms": payload["attempts"][0]["latency_ms"],
            "results": 10,
            "cached": True,
        }
    ]
    top = payload["results"][0]
    assert (top["licence"], top["creator"]) == ("CC BY-SA 2.0", "Artist 0")
    assert top["licence_url"] == "https://creativecommons.org/licenses/by-sa/2.0/"
    assert top["url"] == "https://www.flickr.com/photos/someone/0"  # the source page


def api_requests(server: EngineServer) -> list:
    return [s for s in server.requests if s.path == "/v1/images/"]


def test_fallback_in_the_pipeline_says_who_answered_and_why_the_first_did_not(tmp_path: Path) -> None:
    with EngineServer(CommonsApi(available=5)) as commons:
        search = f"openverse:{refused_url()},wikimedia:{commons.url('/w/api.php')}"
        outcome = pipeline_for(search, tmp_path).search(query="cat", options=NO_RERANK)
    assert outcome.backend == "wikimedia" and len(outcome.results) == 5 and outcome.warning is None
    assert [(a.engine, a.status, a.detail) for a in outcome.attempts] == [
        ("Openverse", "offline", "connection refused"),
        ("Wikimedia Commons", "answered", ""),
    ]
    assert ui_format.search_status(outcome).startswith("5 images from Wikimedia Commons")


def test_unreachable_engines_read_as_offline_never_as_rate_limiting(tmp_path: Path) -> None:
    search = f"openverse:{refused_url()},wikimedia:{refused_url()}/w/api.php"
    outcome = pipeline_for(search, tmp_path).search(query="cat", options=NO_RERANK)
    assert outcome.results == []
    assert ui_format.search_status(outcome) == (
        "No results: this server cannot reach the image search engines (offline or DNS failure); "
        "tried Openverse, Wikimedia Commons."
    )


# --- search-check -------------------------------------------------------------------------------------------


def test_search_check_reports_each_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = by_path({"/v1/": OpenverseApi(), "/search": SearxngApi(json_enabled=False)})
    with EngineServer(handler) as server:
        monkeypatch.setenv("OUTLYNE_SEARCH", f"openverse:{server.base_url},searxng:{server.base_url}")
        monkeypatch.setenv("OUTLYNE_CACHE_DIR", str(tmp_path))
        assert main(["search-check", "--json", "--query", "owl"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert main(["search-check"]) == 0
        table = capsys.readouterr().out.splitlines()
    assert report["query"] == "owl"
    rows = {row["engine"]: row for row in report["engines"]}
    assert (rows["Openverse"]["status"], rows["Openverse"]["results"]) == ("answered", 10)
    assert rows["SearXNG"]["status"] == "engine_error" and "search.formats" in rows["SearXNG"]["detail"]
    assert table[0].split() == ["engine", "answered,", "or", "why", "not", "latency", "results"]
    assert table[1].startswith("Openverse") and table[1].endswith(" 10")
    assert table[2].startswith("SearXNG") and "engine error: JSON output is off" in table[2]


def test_search_check_fails_when_no_engine_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTLYNE_SEARCH", f"wikimedia:{refused_url()}/w/api.php")
    assert main(["search-check", "--json"]) == 3
    (row,) = json.loads(capsys.readouterr().out)["engines"]
    assert (row["status"], row["detail"]) == ("offline", "connection refused")


def test_search_engines_benchmark_runs_its_scenarios() -> None:
    from outlyne_dev import search_engines_bench

    figures = search_engines_bench.measure(repeats=1, hang_timeout=0.3, hang_repeats=1)
    # measure() itself checks that the second engine answered and that repeats came from the cache.
    assert {"refused_first_ms", "hanging_first_ms", "hanging_first_breaker_open_ms", "cache_hit_ms"} <= set(
        figures
    )
    assert "| cache hit, same chain |" in search_engines_bench.to_markdown(figures)


class RecordingGallery:
    """A gallery: searches by embedding, ranks by likeness itself."""

    name = "local"
    supports_text_query = False
    ranks_visually = True

    def __init__(self) -> None:
        self.requests: list = []

    def search(self, request):
        self.requests.append(request)
        return []


def test_capabilities_decide_text_blending_and_reranking(tmp_path: Path) -> None:
    gallery = RecordingGallery()
    pipeline = pipeline_for("none", tmp_path)
    pipeline = Pipeline(pipeline.config, pipeline.encoder, pipeline.bank, gallery)
    image = np.zeros((64, 64, 3), np.uint8) + 255
    image[20:40, 20:40] = 0
    pipeline.search(image, query="cat", options=SearchOptions(text_weight=0.4))
    blended = gallery.requests[-1]
    assert blended.text_weight == 0.4 and blended.text_embedding is not None
    pipeline.search(image, query="cat")  # weight 0: the query's words are not embedded
    assert gallery.requests[-1].text_embedding is None


def test_text_weight_flag_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["search", "--query", "cat", "--text-weight", "1.5"])
    assert stopped.value.code == 2
    assert "must be a number from 0 to 1, not '1.5'" in capsys.readouterr().err
