"""The concept bank: the shipped file, validation, embedding cache, scoring and per-call extra concepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from outlyne.concepts.bank import ConceptBank, ExtraConceptCache, expand_prompts
from outlyne.concepts.file import (
    MAX_EXTRA_CONCEPTS,
    MAX_EXTRA_LABEL_LENGTH,
    PROMPT_TEMPLATES,
    Concept,
    ExtraConceptsError,
    load_concept_file,
    load_concepts,
    parse_extra_concepts,
)
from outlyne.config import REPO_ROOT
from outlyne.errors import ConceptFileError, OutlyneError
from outlyne.model.embedder import l2_normalize
from outlyne_dev.bench_stages import measure_scoring
from tests.support.fakes import FakeEncoder

# A copy of the 345 Quick, Draw! categories (shared/data/quickdraw_categories.txt), so a clone tests alone.
QUICKDRAW = Path(__file__).parent / "data" / "quickdraw_categories.txt"
CONCEPTS = (
    Concept("chair", "furniture", ("comfort",)),
    Concept("couch", "furniture"),
    Concept("cat", "animal"),
    Concept("The Eiffel Tower", "landmark"),
    Concept("apple", "food"),
)


class RecordingEncoder(FakeEncoder):
    """FakeEncoder that also keeps every text it was asked to embed."""

    def __init__(self, *args: object, lowercase: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.lowercase_prompts = lowercase
        self.texts_seen: list[str] = []

    def embed_texts(self, texts):  # type: ignore[no-untyped-def]
        self.texts_seen.extend(texts)
        return super().embed_texts(texts)


def write_concepts(tmp_path: Path, payload: object, name: str = "concepts.json") -> Path:
    path = tmp_path / name
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
    return path


def file_with(*entries: object, **top: object) -> dict[str, object]:
    return {"version": 1, "concepts": list(entries), **top}


def expected_matrix(encoder: FakeEncoder, labels, templates=PROMPT_TEMPLATES) -> np.ndarray:
    """Concept embeddings computed here, independently of the bank: mean of template vectors, renormalized."""
    fresh = FakeEncoder(encoder.embed_dim, encoder.identity)
    rows = [
        fresh.embed_texts(expand_prompts(label, templates, lowercase=encoder.lowercase_prompts)).mean(axis=0)
        for label in labels
    ]
    return l2_normalize(np.stack(rows))


# --- the shipped concepts.json ------------------------------------------------------------------------


def test_shipped_file_covers_quickdraw_and_design_concepts() -> None:
    concepts = load_concepts(REPO_ROOT / "concepts.json")
    labels = {c.label for c in concepts}
    quickdraw = [line.strip() for line in QUICKDRAW.read_text().splitlines() if line.strip()]
    assert len(quickdraw) == 345
    assert set(quickdraw) <= labels, sorted(set(quickdraw) - labels)
    extra = [c for c in concepts if c.label not in set(quickdraw)]
    assert len(extra) >= 50
    assert len(concepts) >= 395
    seed_000 = {"minimalist furniture", "industrial design", "nature landscape", "logo", "portrait"}
    assert seed_000 <= labels
    # Every Quick, Draw! label got a real group, not a catch-all.
    assert all(c.group not in ("misc", "other", "custom") for c in concepts)


def test_shipped_file_has_no_template_override() -> None:
    assert load_concept_file(REPO_ROOT / "concepts.json").templates is None


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([{"group": "furniture"}], ["concepts[0]", "missing 'label'"]),
        (
            [{"label": "chair", "group": "furniture"}, {"label": "   ", "group": "animal"}],
            ["concepts[1]", "empty"],
        ),
        ([{"label": 7, "group": "animal"}], ["concepts[0]", "'label' must be a string, not a number"]),
        (
            [{"label": "chair", "group": "furniture"}, {"label": "Chair", "group": "furniture"}],
            ['concepts[1] ("Chair")', "duplicate label", 'concepts[0] ("chair")'],
        ),
        ([{"label": "chair"}], ['concepts[0] ("chair")', "missing 'group'"]),
        ([{"label": "chair", "group": "Furniture "}], ['concepts[0] ("chair")', "bad group 'Furniture '"]),
        ([{"label": "chair", "group": ["furniture"]}], ['("chair")', "'group' must be a string, not a list"]),
        (
            [{"label": "chair", "group": "furniture", "search_words": "comfy"}],
            ["'search_words' must be a list"],
        ),
        ([{"label": "chair", "group": "furniture", "search_words": ["", "x"]}], ["non-empty strings"]),
        (
            [{"label": "chair", "group": "furniture", "serach_words": []}],
            ['("chair")', "unknown key 'serach_words'"],
        ),
        (["chair"], ["concepts[0]", "expected an object"]),
        ([{"label": "x" * 81, "group": "misc"}], ["concepts[0]", "81 characters"]),
    ],
)
def test_malformed_entries_name_the_entry_and_problem(tmp_path: Path, entries, expected) -> None:
    path = write_concepts(tmp_path, file_with(*entries))
    with pytest.raises(ConceptFileError) as caught:
        load_concepts(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"version": 1,\n  "concepts": [\n    {"label": "chair",}\n]}', "line 3, column"),
        ("[]", "expected a JSON object"),
        ({"concepts": [{"label": "a", "group": "b"}]}, "'version' must be 1"),
        ({"version": 2, "concepts": [{"label": "a", "group": "b"}]}, "'version' must be 1"),
        ({"version": 1, "concepts": []}, "non-empty list"),
        ({"version": 1}, "non-empty list"),
        ({"version": 1, "concept": []}, "unknown top-level key 'concept'"),
        (
            {"version": 1, "templates": ["a sketch"], "concepts": [{"label": "a", "group": "b"}]},
            "exactly one",
        ),
        ({"version": 1, "templates": "a {}", "concepts": [{"label": "a", "group": "b"}]}, "list of strings"),
    ],
)
def test_malformed_files(tmp_path: Path, payload, expected: str) -> None:
    with pytest.raises(ConceptFileError, match=expected):
        load_concepts(write_concepts(tmp_path, payload))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConceptFileError, match=r"not found.*OUTLYNE_CONCEPTS"):
        load_concepts(tmp_path / "nope.json")


def test_valid_file_round_trip(tmp_path: Path) -> None:
    path = write_concepts(
        tmp_path,
        file_with(
            {"label": " chair ", "group": "furniture", "search_words": ["comfort ", "design"]},
            {"label": "cat", "group": "animal"},
            templates=["a doodle of a {}."],
            description="test bank",
        ),
    )
    spec = load_concept_file(path)
    assert spec.concepts == (Concept("chair", "furniture", ("comfort", "design")), Concept("cat", "animal"))
    assert spec.templates == ("a doodle of a {}.",)


# --- prompts -------------------------------------------------------------------------------------------


def test_prompt_expansion_articles_and_case() -> None:
    assert expand_prompts("apple", ["a sketch of a {}."], lowercase=False) == ["a sketch of an apple."]
    assert expand_prompts("The Eiffel Tower", ["a drawing of a {}."], lowercase=False) == [
        "a drawing of The Eiffel Tower."
    ]
    assert expand_prompts("The Eiffel Tower", ["a drawing of a {}."], lowercase=True) == [
        "a drawing of the eiffel tower."
    ]
    assert expand_prompts("{weird}", ["{} alone"], lowercase=False) == ["{weird} alone"]
    assert 6 <= len(PROMPT_TEMPLATES) <= 10


@pytest.mark.parametrize("lowercase", [True, False])
def test_lowercase_prompts_follow_the_encoder(tmp_path: Path, lowercase: bool) -> None:
    encoder = RecordingEncoder(lowercase=lowercase)
    ConceptBank.build(encoder, CONCEPTS, cache_dir=None)
    assert len(encoder.texts_seen) == len(CONCEPTS) * len(PROMPT_TEMPLATES)
    eiffel = [t for t in encoder.texts_seen if "eiffel" in t.lower()]
    assert eiffel
    assert all(t == t.lower() for t in encoder.texts_seen) is lowercase
    assert ("a sketch of the eiffel tower." in eiffel) is lowercase
    assert ("a sketch of The Eiffel Tower." in eiffel) is not lowercase


# --- building and the disk cache ----------------------------------------------------------------------


def test_build_embeds_mean_of_templates(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=None)
    assert bank.embeddings.shape == (len(CONCEPTS), encoder.embed_dim)
    assert bank.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(bank.embeddings, expected_matrix(encoder, bank.labels), atol=1e-5)
    assert (bank.logit_scale, bank.logit_bias) == (encoder.logit_scale, encoder.logit_bias)
    assert encoder.texts_embedded == len(CONCEPTS) * len(PROMPT_TEMPLATES)
    assert not bank.embeddings.flags.writeable


def test_second_build_reuses_the_cache(tmp_path: Path) -> None:
    first = FakeEncoder()
    built = ConceptBank.build(first, CONCEPTS, cache_dir=tmp_path)
    assert first.text_calls >= 1
    assert len(list(tmp_path.glob("concept-embeddings-*.npz"))) == 1

    second = FakeEncoder()
    messages: list[str] = []
    reused = ConceptBank.build(second, CONCEPTS, cache_dir=tmp_path, progress=messages.append)
    assert second.text_calls == 0
    np.testing.assert_array_equal(reused.embeddings, built.embeddings)
    assert (reused.logit_scale, reused.logit_bias) == (built.logit_scale, built.logit_bias)
    assert reused.concepts == built.concepts
    assert messages == []  # a warm cache is silent: progress is for long work
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file behind


def test_group_or_search_word_edits_keep_the_cache(tmp_path: Path) -> None:
    ConceptBank.build(FakeEncoder(), CONCEPTS, cache_dir=tmp_path)
    regrouped = (Concept("chair", "seating", ("sit",)), *CONCEPTS[1:])
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, regrouped, cache_dir=tmp_path)
    assert encoder.text_calls == 0
    assert bank.concepts[0] == Concept(
        "chair", "seating", ("sit",)
    )  # groups come from the file, not the cache


@pytest.mark.parametrize(
    "change",
    [
        lambda c, t: ((Concept("armchair", "furniture"), *c[1:]), t),  # a label edited
        lambda c, t: ((*c, Concept("dog", "animal")), t),  # a concept added
        lambda c, t: (c, (*t[:-1], "a scribble of a {}.")),  # a template edited
    ],
)
def test_label_or_template_edits_rebuild(tmp_path: Path, change) -> None:
    ConceptBank.build(FakeEncoder(), CONCEPTS, cache_dir=tmp_path)
    concepts, templates = change(CONCEPTS, PROMPT_TEMPLATES)
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, concepts, cache_dir=tmp_path, templates=templates)
    assert encoder.text_calls >= 1
    np.testing.assert_allclose(bank.embeddings, expected_matrix(encoder, bank.labels, templates), atol=1e-5)
    # ... and the rebuilt bank is cached in turn.
    again = FakeEncoder()
    ConceptBank.build(again, concepts, cache_dir=tmp_path, templates=templates)
    assert again.text_calls == 0


def test_other_encoder_identity_rebuilds(tmp_path: Path) -> None:
    ConceptBank.build(FakeEncoder(identity="model-a/fp32"), CONCEPTS, cache_dir=tmp_path)
    encoder = FakeEncoder(identity="model-a/int8")
    ConceptBank.build(encoder, CONCEPTS, cache_dir=tmp_path)
    assert encoder.text_calls >= 1


def _only_cache_file(tmp_path: Path) -> Path:
    (path,) = tmp_path.glob("concept-embeddings-*.npz")
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_bytes(b"not a numpy file at all"),  # garbage
        lambda p: p.write_bytes(b""),  # empty
    ],
)
def test_corrupt_cache_is_rebuilt(tmp_path: Path, damage) -> None:
    built = ConceptBank.build(FakeEncoder(), CONCEPTS, cache_dir=tmp_path)
    path = _only_cache_file(tmp_path)
    damage(path)
    encoder = FakeEncoder()
    rebuilt = ConceptBank.build(encoder, CONCEPTS, cache_dir=tmp_path)
    assert encoder.text_calls >= 1
    np.testing.assert_allclose(rebuilt.embeddings, built.embeddings, atol=1e-6)
    repaired = FakeEncoder()
    ConceptBank.build(repaired, CONCEPTS, cache_dir=tmp_path)
    assert repaired.text_calls == 0


def _rewrite_cache(path: Path, **changes: np.ndarray) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize(
    "changes",
    [
        {"labels": np.array(["chair", "couch", "cat", "eiffel", "apple"])},
        {"embeddings": np.ones((5, 3), np.float32)},
        {"embeddings": np.full((5, 24), np.nan, np.float32)},
        {"key": np.array("another key")},
    ],
)
def test_mismatched_cache_is_rebuilt(tmp_path: Path, changes) -> None:
    ConceptBank.build(FakeEncoder(), CONCEPTS, cache_dir=tmp_path)
    _rewrite_cache(_only_cache_file(tmp_path), **changes)
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=tmp_path)
    assert encoder.text_calls >= 1
    assert bank.labels == tuple(c.label for c in CONCEPTS)


def test_unwritable_cache_dir_still_builds(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    bank = ConceptBank.build(FakeEncoder(), CONCEPTS, cache_dir=blocker / "cache")
    assert len(bank) == len(CONCEPTS)


def test_from_file_uses_the_file_templates(tmp_path: Path) -> None:
    path = write_concepts(
        tmp_path, file_with({"label": "cat", "group": "animal"}, templates=["a doodle of a {}.", "{}"])
    )
    encoder = RecordingEncoder()
    bank = ConceptBank.from_file(encoder, path, cache_dir=None)
    assert encoder.texts_seen == ["a doodle of a cat.", "cat"]
    assert bank.labels == ("cat",)


def test_build_rejects_bad_templates() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ConceptBank.build(FakeEncoder(), CONCEPTS, cache_dir=None, templates=["no placeholder"])


# --- scoring -------------------------------------------------------------------------------------------


def test_scores_are_sigmoid_of_scaled_cosine() -> None:
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=None)
    sketch = encoder.embed_texts(["a sketch of a chair"])[0]

    matrix = expected_matrix(encoder, bank.labels)
    cosines = matrix.astype(np.float64) @ sketch.astype(np.float64)
    logits = cosines * np.exp(encoder.logit_scale) + encoder.logit_bias
    expected = 1.0 / (1.0 + np.exp(-logits))

    probabilities, got_cosines = bank.scores_all(sketch)
    np.testing.assert_allclose(got_cosines, cosines, atol=1e-5)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)

    top = bank.score(sketch, top_k=len(CONCEPTS))
    by_label = dict(zip(bank.labels, expected, strict=True))
    for result in top:
        assert result.score == pytest.approx(by_label[result.label], abs=1e-5)
    assert [r.label for r in top] == [bank.labels[i] for i in np.argsort(-expected, kind="stable")]
    assert top[0].label == "chair"
    assert top[0].search_words == ("comfort",)
    assert top[0].group == "furniture"


def _bank_from_vectors(vectors: list[list[float]], labels: list[str]) -> ConceptBank:
    concepts = tuple(Concept(label, "test") for label in labels)
    return ConceptBank(
        concepts, l2_normalize(np.array(vectors, np.float32)), logit_scale=np.log(10), logit_bias=-5
    )


def test_top_k_order_and_ties() -> None:
    bank = _bank_from_vectors(
        [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], ["x", "y-first", "xy", "y-second", "z"]
    )
    query = l2_normalize(np.array([0.2, 1.0, 0.1], np.float32))
    labels = [s.label for s in bank.score(query, top_k=4)]
    assert labels == ["y-first", "y-second", "xy", "x"]  # equal scores keep bank order
    assert [s.label for s in bank.score(query, top_k=2)] == ["y-first", "y-second"]
    assert len(bank.score(query, top_k=50)) == 5
    assert bank.score(query, top_k=0) == []
    scores = [s.score for s in bank.score(query, top_k=5)]
    assert scores == sorted(scores, reverse=True)
    # A (1, d) row works like a (d,) vector.
    assert bank.score(query[None, :], top_k=1)[0].label == "y-first"


def test_score_rejects_wrong_dimension() -> None:
    bank = _bank_from_vectors([[1, 0, 0]], ["x"])
    with pytest.raises(ValueError, match="dimensions"):
        bank.scores_all(np.ones(4, np.float32))


def test_measure_scoring_reports_microseconds() -> None:
    bank = _bank_from_vectors(np.eye(8).tolist(), [f"c{i}" for i in range(8)])
    report = measure_scoring(bank, runs=20)
    assert report["concepts"] == 8
    assert report["runs"] == 20
    assert 0 < report["min_us"] <= report["median_us"] <= report["p90_us"]


# --- extra concepts ------------------------------------------------------------------------------------


def test_parse_extra_concepts() -> None:
    assert parse_extra_concepts("") == ()
    assert parse_extra_concepts(None) == ()
    concepts = parse_extra_concepts(" red  sofa , lamp\nLamp;;\n\n  desk lamp ,")
    assert [c.label for c in concepts] == ["red sofa", "lamp", "desk lamp"]
    assert {c.group for c in concepts} == {"custom"}


def test_parse_extra_concepts_limits() -> None:
    with pytest.raises(ExtraConceptsError, match=f"at most {MAX_EXTRA_CONCEPTS}"):
        parse_extra_concepts(",".join(f"thing {i}" for i in range(MAX_EXTRA_CONCEPTS + 1)))
    with pytest.raises(ExtraConceptsError, match=f"to {MAX_EXTRA_LABEL_LENGTH} characters or fewer"):
        parse_extra_concepts("ok, " + "y" * (MAX_EXTRA_LABEL_LENGTH + 1))
    assert issubclass(ExtraConceptsError, OutlyneError)  # shown to people as is
    assert (
        len(parse_extra_concepts(",".join(f"t{i}" for i in range(MAX_EXTRA_CONCEPTS)))) == MAX_EXTRA_CONCEPTS
    )


def test_extra_concepts_are_embedded_once_and_never_mutate_the_bank() -> None:
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=None)
    before = (bank.concepts, bank.embeddings.copy())
    cache = ExtraConceptCache(encoder)
    extra = parse_extra_concepts("red sofa, Chair, lamp")

    calls = encoder.text_calls
    merged = bank.merged(cache.bank_for(extra, like=bank))
    assert encoder.text_calls == calls + 1
    # "Chair" is already in the bank: the bank's own entry (group furniture) wins.
    assert merged.labels == (*bank.labels, "red sofa", "lamp")
    assert merged is not bank
    assert (bank.concepts, len(bank)) == (before[0], len(CONCEPTS))
    np.testing.assert_array_equal(bank.embeddings, before[1])

    again = bank.merged(cache.bank_for(parse_extra_concepts("lamp, red sofa"), like=bank))
    assert encoder.text_calls == calls + 1  # both already embedded
    assert again.labels == (*bank.labels, "lamp", "red sofa")
    np.testing.assert_allclose(again.embeddings[-1], merged.embeddings[-2])

    sketch = encoder.embed_texts(["a doodle of a lamp"])[0]
    assert merged.score(sketch, top_k=1)[0].label == "lamp"
    assert merged.score(sketch, top_k=1)[0].group == "custom"
    np.testing.assert_allclose(merged.embeddings[-1], expected_matrix(encoder, ["lamp"])[0], atol=1e-5)


def test_extra_cache_is_bounded_and_keyed_by_encoder() -> None:
    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=None)
    cache = ExtraConceptCache(encoder, max_entries=2)
    cache.bank_for([Concept("a1", "custom"), Concept("a2", "custom"), Concept("a3", "custom")], like=bank)
    assert len(cache) == 2
    calls = encoder.text_calls
    cache.bank_for([Concept("a3", "custom")], like=bank)
    assert encoder.text_calls == calls  # the most recent ones were kept
    cache.bank_for([Concept("a1", "custom")], like=bank)
    assert encoder.text_calls == calls + 1  # the oldest was evicted

    empty = cache.bank_for([], like=bank)
    assert len(empty) == 0
    assert bank.merged(empty) is bank


def test_extra_cache_is_thread_safe() -> None:
    from concurrent.futures import ThreadPoolExecutor

    encoder = FakeEncoder()
    bank = ConceptBank.build(encoder, CONCEPTS, cache_dir=None)
    cache = ExtraConceptCache(encoder, max_entries=8)
    requests = [[Concept(f"thing {(i + j) % 12}", "custom") for j in range(3)] for i in range(60)]
    with ThreadPoolExecutor(4) as pool:
        banks = list(pool.map(lambda extra: cache.bank_for(extra, like=bank), requests))
    for extra, result in zip(requests, banks, strict=True):
        assert result.labels == tuple(c.label for c in extra)
        np.testing.assert_allclose(result.embeddings, expected_matrix(encoder, result.labels), atol=1e-5)
    assert len(cache) <= 8


# --- the real encoder (integration) ----------------------------------------------------------------


def test_real_encoder_bank_and_cache(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The tiny random SigLIP through OpenVINO: mechanics only (random weights mean nothing)."""
    try:
        encoder = request.getfixturevalue("tiny_encoder")
    except pytest.FixtureLookupError:
        pytest.skip("the tiny_encoder fixture (outlyne/encoder.py on the tiny checkpoint) does not exist yet")

    calls = []

    class Counting:
        identity = encoder.identity
        embed_dim = encoder.embed_dim
        logit_scale = encoder.logit_scale
        logit_bias = encoder.logit_bias
        lowercase_prompts = encoder.lowercase_prompts

        def embed_texts(self, texts):  # type: ignore[no-untyped-def]
            calls.append(list(texts))
            return encoder.embed_texts(texts)

        def embed_images(self, images, batch_size=None):  # type: ignore[no-untyped-def]
            return encoder.embed_images(images, batch_size)

    concepts = CONCEPTS[:3]
    bank = ConceptBank.build(Counting(), concepts, cache_dir=tmp_path)
    assert len(calls) == 1
    assert bank.embeddings.shape == (3, encoder.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-4)

    direct = l2_normalize(
        np.stack(
            [
                encoder.embed_texts(
                    calls[0][i * len(PROMPT_TEMPLATES) : (i + 1) * len(PROMPT_TEMPLATES)]
                ).mean(0)
                for i in range(3)
            ]
        )
    )
    np.testing.assert_allclose(bank.embeddings, direct, atol=1e-4)

    image = np.full((40, 40, 3), 255, np.uint8)
    image[10:30, 18:22] = 0
    vector = encoder.embed_images([image])[0]
    probabilities, cosines = bank.scores_all(vector)
    expected = 1 / (
        1 + np.exp(-(cosines.astype(np.float64) * np.exp(encoder.logit_scale) + encoder.logit_bias))
    )
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert [s.label for s in bank.score(vector, top_k=3)] == [
        bank.labels[i] for i in np.argsort(-probabilities, kind="stable")
    ]

    ConceptBank.build(Counting(), concepts, cache_dir=tmp_path)
    assert len(calls) == 1  # the second build came from the cache file
