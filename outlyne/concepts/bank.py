"""Concept text embeddings, computed once and cached on disk, and scoring.

Scoring a sketch is one matrix product against text embeddings computed once (and cached on disk), not a
re-encoding of every label per request (seed 000 quotes 12 ms for that; this takes microseconds).

Embeddings cache
----------------
``ConceptBank.build`` stores the averaged, renormalized text embeddings with the model's ``logit_scale``
and ``logit_bias`` in ``<cache_dir>/concept-embeddings-<key>.npz``. The key hashes the encoder identity
(model, precision, exporter version) and every expanded prompt, so changing a label, the templates or the
model rebuilds; changing only a group or search words does not, since they do not change any vector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from outlyne.concepts.file import (
    PROMPT_TEMPLATES,
    Concept,
    ConceptScore,
    load_concept_file,
    template_problem,
)
from outlyne.model.embedder import Embedder, l2_normalize

log = logging.getLogger(__name__)

# Concepts per embed_texts call when building: bounds memory (x templates prompts of 64 tokens each) and
# gives the progress callback something to report during the minute a real model takes.
CONCEPTS_PER_BATCH = 32
# Bump when the cache file layout changes: old files then simply stop matching.
CACHE_FORMAT = 1


# ---------------------------------------------------------------------------------------------------------
# Prompts and text embeddings


def expand_prompts(label: str, templates: Sequence[str], *, lowercase: bool) -> list[str]:
    """Every template filled with the label, with "a" fixed to "an"/nothing where English needs it."""
    return [_fill(template, label, lowercase) for template in templates]


def _fill(template: str, label: str, lowercase: bool) -> str:
    article = _article(label)
    # str.replace, not str.format: a label with braces must not be read as a format field.
    filled = re.sub(r"\ba \{\}", lambda _: f"{article} {{}}" if article else "{}", template)
    prompt = filled.replace("{}", label)
    return prompt.lower() if lowercase else prompt


def _article(label: str) -> str:
    lowered = label.lower()
    if lowered.startswith("the "):
        return ""
    return "an" if lowered[:1] in ("a", "e", "i", "o", "u") else "a"


def _prompt_table(encoder: Embedder, labels: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    lowercase = bool(getattr(encoder, "lowercase_prompts", False))
    return [expand_prompts(label, templates, lowercase=lowercase) for label in labels]


def _embed_prompt_table(
    encoder: Embedder, table: Sequence[Sequence[str]], progress: Callable[[str], None] | None = None
) -> np.ndarray:
    """(n, d) unit rows: each concept's template embeddings averaged, then renormalized."""
    if not table:
        return np.zeros((0, encoder.embed_dim), np.float32)
    per_concept = len(table[0])
    rows: list[np.ndarray] = []
    for start in range(0, len(table), CONCEPTS_PER_BATCH):
        chunk = table[start : start + CONCEPTS_PER_BATCH]
        if progress:
            progress(f"Embedding concepts {start + 1}-{start + len(chunk)} of {len(table)}")
        prompts = [prompt for concept_prompts in chunk for prompt in concept_prompts]
        vectors = np.asarray(encoder.embed_texts(prompts), np.float32)
        if vectors.shape != (len(prompts), encoder.embed_dim):
            raise ValueError(
                f"embed_texts returned shape {vectors.shape}, expected {(len(prompts), encoder.embed_dim)}"
            )
        rows.append(vectors.reshape(len(chunk), per_concept, -1).mean(axis=1))
    return l2_normalize(np.concatenate(rows))


# ---------------------------------------------------------------------------------------------------------
# The bank


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for large negative logits, unlike 1 / (1 + exp(-x)).
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True, eq=False)
class ConceptBank:
    """Concepts with their unit text embeddings. Read-only once built: share it between threads freely."""

    concepts: tuple[Concept, ...]
    embeddings: np.ndarray
    """(n, d) float32, unit rows, in the order of `concepts`; not writeable."""
    logit_scale: float
    """Raw scale: exp() is applied when scoring, as SigLIP does."""
    logit_bias: float
    templates: tuple[str, ...] = PROMPT_TEMPLATES
    """The prompt ensemble the embeddings were made with: extra concepts must use the same."""
    _scale: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        embeddings = np.array(self.embeddings, dtype=np.float32, copy=True)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(self.concepts):
            raise ValueError(
                f"embeddings of shape {embeddings.shape} do not match {len(self.concepts)} concepts"
            )
        labels = [c.label.casefold() for c in self.concepts]
        if len(set(labels)) != len(labels):
            raise ValueError("concept labels must be unique (case-insensitively)")
        embeddings.setflags(write=False)
        object.__setattr__(self, "concepts", tuple(self.concepts))
        object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "logit_scale", float(self.logit_scale))
        object.__setattr__(self, "logit_bias", float(self.logit_bias))
        object.__setattr__(self, "_scale", math.exp(self.logit_scale))

    def __len__(self) -> int:
        return len(self.concepts)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.concepts)

    @property
    def embed_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @classmethod
    def build(
        cls,
        encoder: Embedder,
        concepts: Sequence[Concept],
        *,
        cache_dir: Path | None,
        templates: Sequence[str] = PROMPT_TEMPLATES,
        progress: Callable[[str], None] | None = None,
    ) -> ConceptBank:
        """Embed every concept with the template ensemble, or reuse the cache file made for the same
        encoder identity and expanded prompts. A missing, corrupt or mismatched cache file is rebuilt."""
        problem = template_problem(templates)
        if problem:
            raise ValueError(f"prompt templates: {problem}")
        concepts = tuple(concepts)
        table = _prompt_table(encoder, [c.label for c in concepts], templates)
        key = _cache_key(encoder.identity, table)
        path = Path(cache_dir) / f"concept-embeddings-{key[:24]}.npz" if cache_dir is not None else None
        if path is not None:
            cached = _read_cache(path, key, concepts, encoder.embed_dim, progress)
            if cached is not None:
                embeddings, scale, bias = cached
                return cls(concepts, embeddings, scale, bias, tuple(templates))
        embeddings = _embed_prompt_table(encoder, table, progress)
        bank = cls(concepts, embeddings, encoder.logit_scale, encoder.logit_bias, tuple(templates))
        if path is not None:
            _write_cache(path, key, bank, progress)
        return bank

    @classmethod
    def from_file(
        cls,
        encoder: Embedder,
        path: str | os.PathLike[str],
        *,
        cache_dir: Path | None,
        progress: Callable[[str], None] | None = None,
    ) -> ConceptBank:
        """`build` on a concept file, honouring the file's own "templates" when it has them."""
        spec = load_concept_file(path)
        templates = spec.templates or PROMPT_TEMPLATES
        return cls.build(encoder, spec.concepts, cache_dir=cache_dir, templates=templates, progress=progress)

    def scores_all(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, cosines) for every concept, in bank order: one matrix product."""
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.embeddings.shape[1]:
            raise ValueError(
                f"embedding has {vector.shape[0]} dimensions, the bank {self.embeddings.shape[1]}"
            )
        cosines = self.embeddings @ vector
        return _sigmoid(cosines * self._scale + self.logit_bias), cosines

    def score(self, embedding: np.ndarray, top_k: int = 5) -> list[ConceptScore]:
        """The top_k concepts by probability, best first; equal scores keep bank order (deterministic)."""
        if top_k <= 0 or not self.concepts:
            return []
        probabilities, cosines = self.scores_all(embedding)
        # A stable sort on the negated scores breaks ties by index.
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        return [self._score_of(int(i), probabilities, cosines) for i in order]

    def _score_of(self, index: int, probabilities: np.ndarray, cosines: np.ndarray) -> ConceptScore:
        concept = self.concepts[index]
        return ConceptScore(
            concept.label,
            concept.group,
            float(probabilities[index]),
            float(cosines[index]),
            concept.search_words,
        )

    def merged(self, extra: ConceptBank) -> ConceptBank:
        """A new bank with `extra`'s concepts appended (self is untouched). Extra labels already in this bank
        are skipped: the bank's own entry, with its group and search words, wins."""
        if extra.embeddings.shape[1] != self.embeddings.shape[1] and len(extra):
            raise ValueError("cannot merge banks built by encoders of different dimensions")
        known = {c.label.casefold() for c in self.concepts}
        keep = [i for i, c in enumerate(extra.concepts) if c.label.casefold() not in known]
        if not keep:
            return self
        return ConceptBank(
            self.concepts + tuple(extra.concepts[i] for i in keep),
            np.concatenate([self.embeddings, extra.embeddings[keep]]),
            self.logit_scale,
            self.logit_bias,
            self.templates,
        )


# ---------------------------------------------------------------------------------------------------------
# Disk cache


def _cache_key(identity: str, table: Sequence[Sequence[str]]) -> str:
    payload = json.dumps({"format": CACHE_FORMAT, "identity": identity, "prompts": table}, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _read_cache(
    path: Path,
    key: str,
    concepts: Sequence[Concept],
    embed_dim: int,
    progress: Callable[[str], None] | None,
) -> tuple[np.ndarray, float, float] | None:
    """The cached (embeddings, logit_scale, logit_bias), or None when the file is absent or unusable."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = str(data["key"])
            labels = [str(label) for label in data["labels"]]
            embeddings = np.asarray(data["embeddings"], np.float32)
            scale, bias = float(data["logit_scale"]), float(data["logit_bias"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        _report(progress, f"Concept embedding cache {path.name} is unreadable ({error}); rebuilding it.")
        return None
    problem = _cache_problem(stored_key, key, labels, embeddings, concepts, embed_dim, scale, bias)
    if problem:
        _report(progress, f"Concept embedding cache {path.name} {problem}; rebuilding it.")
        return None
    # Progress is for long work: a warm start stays silent (the CLI's one-line errors stay one line).
    log.info("Loaded %d concept embeddings from %s", len(concepts), path)
    return embeddings, scale, bias


def _cache_problem(
    stored_key: str,
    key: str,
    labels: list[str],
    embeddings: np.ndarray,
    concepts: Sequence[Concept],
    embed_dim: int,
    scale: float,
    bias: float,
) -> str | None:
    if stored_key != key:
        return "was made for other prompts or another model"
    if labels != [c.label for c in concepts]:
        return "holds other labels"
    if embeddings.shape != (len(concepts), embed_dim):
        return f"has shape {embeddings.shape}, expected {(len(concepts), embed_dim)}"
    if not (np.isfinite(embeddings).all() and math.isfinite(scale) and math.isfinite(bias)):
        return "holds non-finite numbers"
    if len(concepts) and not np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-3):
        return "holds rows that are not unit vectors"
    return None


def _write_cache(path: Path, key: str, bank: ConceptBank, progress: Callable[[str], None] | None) -> None:
    """Atomic write (temp file + os.replace): a crash or a concurrent reader never sees half a file.
    A cache that cannot be written (read-only disk) costs a rebuild next time, never the request."""
    temp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                key=np.array(key),
                labels=np.array([c.label for c in bank.concepts], dtype=str),
                embeddings=bank.embeddings,
                logit_scale=np.array(bank.logit_scale),
                logit_bias=np.array(bank.logit_bias),
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
        temp_name = None
        _report(progress, f"Saved {len(bank)} concept embeddings to {path}")
    except OSError as error:
        _report(progress, f"Could not save the concept embedding cache {path}: {error}", warning=True)
    finally:
        if temp_name is not None:
            Path(temp_name).unlink(missing_ok=True)


def _report(progress: Callable[[str], None] | None, message: str, *, warning: bool = False) -> None:
    (log.warning if warning else log.info)(message)
    if progress:
        progress(message)


# ---------------------------------------------------------------------------------------------------------
# Per-call extra concepts


class ExtraConceptCache:
    """Text embeddings of the UI's extra concepts, computed once per (encoder identity, label, templates).

    Kept in memory in a bounded LRU guarded by a lock, so concurrent sessions share the work. It only
    builds small separate banks; the shared bank is never touched (merge with `bank.merged(...)`).
    """

    def __init__(
        self, encoder: Embedder, templates: Sequence[str] = PROMPT_TEMPLATES, max_entries: int = 1024
    ) -> None:
        problem = template_problem(templates)
        if problem:
            raise ValueError(f"prompt templates: {problem}")
        self._encoder = encoder
        self._templates = tuple(templates)
        self._max_entries = max(1, max_entries)
        self._vectors: OrderedDict[tuple[str, tuple[str, ...]], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._vectors)

    def bank_for(self, concepts: Sequence[Concept], like: ConceptBank) -> ConceptBank:
        """A bank of just `concepts` (duplicates dropped), scored with `like`'s logit scale and bias."""
        unique = _dedup_concepts(concepts)
        if not unique:
            return ConceptBank(
                (), np.zeros((0, like.embed_dim), np.float32), like.logit_scale, like.logit_bias
            )
        keys = self._keys_for(unique)
        vectors = self._lookup(keys)
        missing = [i for i, vector in enumerate(vectors) if vector is None]
        if missing:
            # Embedded outside the lock: a slow text model must not block sessions whose concepts are
            # cached. Two sessions adding the same new label at once may both embed it; both results agree.
            fresh = _embed_prompt_table(self._encoder, [list(keys[i][1]) for i in missing])
            self._store([keys[i] for i in missing], fresh)
            for i, vector in zip(missing, fresh, strict=True):
                vectors[i] = vector
        matrix = np.stack(vectors)
        if matrix.shape[1] != like.embed_dim:
            raise ValueError("the extra concepts' encoder does not match the bank's embedding size")
        return ConceptBank(unique, matrix, like.logit_scale, like.logit_bias)

    def _keys_for(self, concepts: Sequence[Concept]) -> list[tuple[str, tuple[str, ...]]]:
        table = _prompt_table(self._encoder, [c.label for c in concepts], self._templates)
        return [(self._encoder.identity, tuple(prompts)) for prompts in table]

    def _lookup(self, keys: Sequence[tuple[str, tuple[str, ...]]]) -> list[np.ndarray | None]:
        with self._lock:
            found: list[np.ndarray | None] = []
            for key in keys:
                vector = self._vectors.get(key)
                if vector is not None:
                    self._vectors.move_to_end(key)
                found.append(vector)
            return found

    def _store(self, keys: Sequence[tuple[str, tuple[str, ...]]], vectors: np.ndarray) -> None:
        with self._lock:
            for key, vector in zip(keys, vectors, strict=True):
                row = np.array(vector, np.float32)
                row.setflags(write=False)
                self._vectors[key] = row
                self._vectors.move_to_end(key)
            while len(self._vectors) > self._max_entries:
                self._vectors.popitem(last=False)


def _dedup_concepts(concepts: Sequence[Concept]) -> tuple[Concept, ...]:
    seen: set[str] = set()
    unique = []
    for concept in concepts:
        if concept.label.casefold() not in seen:
            seen.add(concept.label.casefold())
            unique.append(concept)
    return tuple(unique)
