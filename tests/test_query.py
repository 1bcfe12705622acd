"""build_query on hand-made score lists: one test per rule."""

from __future__ import annotations

from outlyne.concepts.file import ConceptScore
from outlyne.query import GENERIC_GROUPS, build_query


def s(label: str, score: float, group: str = "furniture", *words: str) -> ConceptScore:
    return ConceptScore(label, group, score, cosine=score / 10, search_words=words)


def test_seed_example() -> None:
    assert (
        build_query([s("chair", 0.71, "furniture", "comfort", "design")]) == "chair furniture comfort design"
    )


def test_empty_input() -> None:
    assert build_query([]) == ""
    assert build_query([s("chair", 0.7)], max_concepts=0) == ""


def test_labels_first_in_score_order_then_groups_then_search_words() -> None:
    scores = [s("couch", 0.5, "furniture", "sofa"), s("cat", 0.6, "animal", "pet")]
    assert build_query(scores) == "cat couch animal furniture pet sofa"


def test_weak_runner_up_left_out() -> None:
    scores = [s("chair", 0.71), s("couch", 0.22), s("bench", 0.09)]
    assert build_query(scores) == "chair couch furniture"
    assert build_query(scores, weak_ratio=0.1) == "chair couch bench furniture"
    assert build_query(scores, weak_ratio=0.5) == "chair furniture"


def test_at_most_max_concepts() -> None:
    scores = [s("a1", 0.9, "x"), s("a2", 0.9, "x"), s("a3", 0.9, "x"), s("a4", 0.9, "x")]
    assert build_query(scores) == "a1 a2 a3 x"
    assert build_query(scores, max_concepts=1) == "a1 x"


def test_duplicate_words_removed_case_insensitively() -> None:
    scores = [
        s("coffee cup", 0.8, "kitchen", "Coffee", "mug"),
        s("cup", 0.7, "kitchen"),
        s("Mug", 0.6, "kitchen"),
    ]
    assert build_query(scores) == "coffee cup Mug kitchen"


def test_generic_groups_skipped() -> None:
    for group in ("shape", "symbol", "custom", "misc"):
        assert group in GENERIC_GROUPS
    assert build_query([s("circle", 0.8, "shape"), s("heart", 0.7, "symbol", "love")]) == "circle heart love"
    assert build_query([s("red sofa", 0.8, "custom")]) == "red sofa"


def test_hyphenated_group_becomes_two_words() -> None:
    assert build_query([s("cello", 0.8, "musical-instrument")]) == "cello musical instrument"


def test_max_words_cuts_the_tail_but_never_the_top_label() -> None:
    scores = [s("chair", 0.8, "furniture", "comfort", "design", "wood", "modern")]
    assert build_query(scores, max_words=3) == "chair furniture comfort"
    long_label = [s("The Great Wall of China", 0.8, "landmark", "China")]
    assert build_query(long_label, max_words=2) == "The Great Wall of China"


def test_equal_scores_keep_input_order_and_output_is_deterministic() -> None:
    scores = [s("b", 0.5, "x"), s("a", 0.5, "y")]
    assert build_query(scores) == "b a x y"
    assert build_query(list(reversed(scores))) == "a b y x"
    assert build_query(scores) == build_query(list(scores))
