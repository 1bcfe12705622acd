"""The concept file: labels a sketch can be recognized as, parsed and checked.

Concept file schema (``concepts.json``, path from ``OUTLYNE_CONCEPTS``)
----------------------------------------------------------------------
A JSON object::

    {
      "version": 1,                          required, must be 1
      "description": "...",                  optional, free text for people
      "templates": ["a sketch of a {}.", ...],  optional, replaces the built-in prompt ensemble
      "concepts": [                          required, at least one entry
        {"label": "chair", "group": "furniture", "search_words": ["comfort", "design"]},
        {"label": "The Eiffel Tower", "group": "landmark"}
      ]
    }

Each concept entry:

- ``label`` (string, required): what the sketch may show, as people would say it. Leading and trailing
  spaces are trimmed; at most 80 characters; unique, compared case-insensitively (SigLIP2 prompts are
  lowercased, so "Car" and "car" would be the same vector).
- ``group`` (string, required): a lowercase word or two joined by "-" or "_" (``furniture``, ``animal``,
  ``vehicle``...). It is shown in the UI and used as a search word unless generic (see ``query.py``).
- ``search_words`` (list of strings, optional): extra words added to the search query when this concept
  wins (``"couch"`` -> ``["sofa"]``).

Any other key is an error (it is usually a typo of one of these). Each template holds exactly one ``{}``
where the label goes; "a {}" becomes "an {}" before a vowel and "{}" before a label starting with "The".

A malformed file raises ``ConceptFileError`` naming the file, the entry (``concepts[12] ("chair")``) and
the problem; bad JSON names the line and column.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from outlyne.errors import ConceptFileError, OutlyneError, shorten

log = logging.getLogger(__name__)

# Sketch-suited prompt ensemble: sketches are not photos, and averaging several phrasings of "a drawing of"
# smooths over any single template's quirks (the usual CLIP/SigLIP zero-shot recipe).
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a sketch of a {}.",
    "a drawing of a {}.",
    "a doodle of a {}.",
    "a pencil sketch of a {}.",
    "a simple line drawing of a {}.",
    "a black and white drawing of a {}.",
    "a hand-drawn sketch of a {}.",
    "a rough sketch of a {}.",
)

FILE_VERSION = 1
MAX_LABEL_LENGTH = 80
MAX_EXTRA_CONCEPTS = 20
MAX_EXTRA_LABEL_LENGTH = 60
EXTRA_GROUP = "custom"
# Concepts per embed_texts call when building: bounds memory (x templates prompts of 64 tokens each) and
# gives the progress callback something to report during the minute a real model takes.
CONCEPTS_PER_BATCH = 32
# Bump when the cache file layout changes: old files then simply stop matching.
CACHE_FORMAT = 1

_GROUP_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_ENTRY_KEYS = ("label", "group", "search_words")
_TOP_LEVEL_KEYS = ("version", "description", "templates", "concepts")
_EXTRA_SEPARATORS = re.compile(r"[,;\n\r]+")
# How JSON values are named in error messages, for people who edit the file rather than read Python.
_JSON_KINDS = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    type(None): "null",
}


class ExtraConceptsError(OutlyneError):
    """The "add your own concepts" text cannot be used (too many, too long); the message says which."""


@dataclass(frozen=True)
class Concept:
    label: str
    group: str
    search_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Callers building concepts in code may pass a list; a tuple keeps the dataclass hashable.
        object.__setattr__(self, "search_words", tuple(self.search_words))


@dataclass(frozen=True)
class ConceptScore:
    label: str
    group: str
    score: float
    """Sigmoid probability: sigmoid(cosine * exp(logit_scale) + logit_bias)."""
    cosine: float
    search_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConceptFile:
    concepts: tuple[Concept, ...]
    templates: tuple[str, ...] | None
    """The file's own prompt ensemble, or None to use PROMPT_TEMPLATES."""


# ---------------------------------------------------------------------------------------------------------
# Loading and validating the concept file


def load_concepts(path: str | os.PathLike[str]) -> tuple[Concept, ...]:
    """The concepts of a concept file, validated (see the module docstring for the schema)."""
    return load_concept_file(path).concepts


def load_concept_file(path: str | os.PathLike[str]) -> ConceptFile:
    """The concepts and the optional template override of a concept file, validated."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConceptFileError(f"{path}: expected a JSON object with a 'concepts' list, not {_kind(data)}.")
    unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ConceptFileError(
            f"{path}: unknown top-level key {unknown[0]!r} (allowed: {', '.join(_TOP_LEVEL_KEYS)})."
        )
    if data.get("version") != FILE_VERSION:
        raise ConceptFileError(
            f"{path}: 'version' must be {FILE_VERSION}, not {data.get('version')!r}"
            " (a missing version is an error too, so future formats are never misread)."
        )
    templates = _file_templates(path, data.get("templates"))
    entries = data.get("concepts")
    if not isinstance(entries, list) or not entries:
        raise ConceptFileError(f"{path}: 'concepts' must be a non-empty list of concept entries.")
    return ConceptFile(_parse_entries(path, entries), templates)


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConceptFileError(
            f"Concept file not found: {path} (set OUTLYNE_CONCEPTS to a concepts.json file)."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConceptFileError(f"Cannot read concept file {path}: {error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConceptFileError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None
    except RecursionError:  # "[[[[...]]]]" thousands deep: Python's parser gives up, say what it means
        raise ConceptFileError(f"{path} is nested too deeply to be a concept file.") from None


def _file_templates(path: Path, templates: object) -> tuple[str, ...] | None:
    if templates is None:
        return None
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        raise ConceptFileError(
            f"{path}: 'templates' must be a list of strings such as \"a sketch of a {{}}.\"."
        )
    problem = template_problem(templates)
    if problem:
        raise ConceptFileError(f"{path}: 'templates': {problem}")
    return tuple(templates)


def template_problem(templates: Sequence[str]) -> str | None:
    """Why a prompt ensemble is unusable, or None when it is fine."""
    if not templates:
        return "at least one template is needed."
    for template in templates:
        if template.count("{}") != 1:
            return f"{template!r} must contain exactly one '{{}}' where the label goes."
    if len(set(templates)) != len(templates):
        return "templates are repeated."
    return None


def _parse_entries(path: Path, entries: list[object]) -> tuple[Concept, ...]:
    concepts: list[Concept] = []
    first_seen: dict[str, tuple[int, str]] = {}
    for index, entry in enumerate(entries):
        concept = _parse_entry(path, index, entry)
        key = concept.label.casefold()
        if key in first_seen:
            other_index, other_label = first_seen[key]
            raise ConceptFileError(
                f'{path}: concepts[{index}] ("{concept.label}"): duplicate label, same as '
                f'concepts[{other_index}] ("{other_label}") (labels are compared case-insensitively).'
            )
        first_seen[key] = (index, concept.label)
        concepts.append(concept)
    return tuple(concepts)


def _parse_entry(path: Path, index: int, entry: object) -> Concept:
    where = f"{path}: concepts[{index}]"
    if not isinstance(entry, dict):
        raise ConceptFileError(
            f'{where}: expected an object like {{"label": ..., "group": ...}}, not {_kind(entry)}.'
        )
    label = entry.get("label")
    if isinstance(label, str) and label.strip():
        where = f'{where} ("{shorten(label.strip(), 60)}")'

    def fail(problem: str) -> ConceptFileError:
        return ConceptFileError(f"{where}: {problem}")

    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        raise fail(f"unknown key {shorten(repr(unknown[0]), 40)} (allowed: {', '.join(_ENTRY_KEYS)}).")
    if "label" not in entry:
        raise fail("missing 'label'.")
    if not isinstance(label, str):
        raise fail(f"'label' must be a string, not {_kind(label)}.")
    label = label.strip()
    if not label:
        raise fail("'label' is empty.")
    if len(label) > MAX_LABEL_LENGTH:
        raise fail(f"'label' is {len(label)} characters long; at most {MAX_LABEL_LENGTH} are allowed.")
    group = entry.get("group")
    if "group" not in entry:
        raise fail("missing 'group'.")
    if not isinstance(group, str):
        raise fail(f"'group' must be a string, not {_kind(group)}.")
    if not _GROUP_PATTERN.match(group):
        raise fail(
            f"bad group {shorten(repr(group), 40)}: "
            "use a lowercase word such as 'furniture' or 'musical-instrument'."
        )
    return Concept(label, group, _parse_search_words(entry.get("search_words", []), fail))


def _parse_search_words(words: object, fail: Callable[[str], ConceptFileError]) -> tuple[str, ...]:
    if not isinstance(words, list):
        raise fail(f"'search_words' must be a list of strings, not {_kind(words)}.")
    cleaned = []
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise fail(f"'search_words' must hold non-empty strings; found {shorten(repr(word), 40)}.")
        cleaned.append(word.strip())
    return tuple(cleaned)


def _kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), f"a {type(value).__name__}")


def parse_extra_concepts(text: str | None) -> tuple[Concept, ...]:
    """The UI's "add your own concepts" box: labels separated by commas, semicolons or new lines.

    Trims spaces, collapses inner whitespace, drops empty items and case-insensitive duplicates (keeping
    the first spelling). Too many labels or a too long one is an ExtraConceptsError, not a silent cut, so
    the person knows what was ignored.
    """
    if not text:
        return ()
    labels: list[str] = []
    seen: set[str] = set()
    for item in _EXTRA_SEPARATORS.split(text):
        label = " ".join(item.split())
        if not label or label.casefold() in seen:
            continue
        if len(label) > MAX_EXTRA_LABEL_LENGTH:
            raise ExtraConceptsError(
                f'The concept "{label[:30]}..." is {len(label)} characters long; '
                f"keep each one to {MAX_EXTRA_LABEL_LENGTH} characters or fewer."
            )
        seen.add(label.casefold())
        labels.append(label)
    if len(labels) > MAX_EXTRA_CONCEPTS:
        raise ExtraConceptsError(
            f"{len(labels)} extra concepts given; at most {MAX_EXTRA_CONCEPTS} can be added at once."
        )
    return tuple(Concept(label, EXTRA_GROUP) for label in labels)
