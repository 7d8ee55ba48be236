"""The retrieval corpus: Multi30k (or demo) queries in de/fr/cs/en and English captions.

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
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optical_core import data as _data
from optical_core.demo_set import load_demo

if TYPE_CHECKING:  # pragma: no cover
    pass


QUERY_LANGS: tuple[str, ...] = ("de", "fr", "cs", "en")
#: Multi30k splits that have English documents (all of them) — the test splits first.
RETRIEVAL_SPLITS: tuple[str, ...] = (
    "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr", "val",
)
DEFAULT_SPLIT = "test_2016_flickr"
DEMO_NAME = "demo"

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
    _data.check_name("Multi30k split", split, _data.SPLITS)
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
    pairs = load_demo()
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
