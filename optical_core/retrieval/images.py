"""Caption→image retrieval on Multi30k's Flickr30k images, with a CLIP-family teacher.

The queries are the task1 captions of a Multi30k split in one language, the
documents are the split's distinct images found in a user-given folder (Multi30k ships the
image *names*, ``task1/image_splits/{split}.txt``; the Flickr30k images themselves need a
request form), and a caption's one relevant image is the image of its line. Images are
embedded by the teacher's vision tower, captions by the model under test (the student, or
the teacher itself for English); scores are cosines. Metrics (MRR@10, R@1/5/10 with 95 %
bootstrap intervals) come from :mod:`optical_core.retrieval.metrics` (ranx). The CLIP
models themselves are in :mod:`optical_core.encoders.clip`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optical_core import data as _data
from optical_core.encoders.clip import MultimodalError, check_caption_model, is_clip_model
from optical_core.retrieval.corpus import DEFAULT_SPLIT, Corpus, QuerySet
from optical_core.retrieval.index import unit_rows
from optical_core.retrieval.metrics import (
    METRIC_LABELS,
    MetricSummary,
    format_percent,
    per_query_metrics,
    summarize,
)
from optical_core.retrieval.scorers import Ranking

IMAGE_METRICS: tuple[str, ...] = ("mrr@10", "recall@1", "recall@5", "recall@10")
_README_HINT = "download the Flickr30k images (see README, 'Multimodal (CLIP) path')"




# --------------------------------------------------------------------------- images


def image_file_name(entry: str) -> str:
    """The file name of an ``image_splits`` entry (COCO entries carry a ``#caption id``)."""
    return entry.split("#", 1)[0].strip()


@dataclass(frozen=True)
class ImageCorpus:
    """The distinct images of a Multi30k split that exist in a folder.

    Attributes:
        split: Multi30k split.
        image_dir: the resolved image folder.
        names: file names of the images found, in order of first appearance in the split.
        paths: their absolute paths (inside ``image_dir``).
        line_image: for every line of the split, the index into ``names`` of its image, or
            ``-1`` when that image is missing.
        n_expected: number of distinct images the split names.
        missing: names of the images not found.
    """

    split: str
    image_dir: Path
    names: tuple[str, ...]
    paths: tuple[Path, ...]
    line_image: tuple[int, ...]
    n_expected: int
    missing: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """A sentence about missing images ('' when all were found)."""
        if not self.missing:
            return ""
        lost = sum(1 for i in self.line_image if i < 0)
        return (f"found {len(self.names):,} of {self.n_expected:,} images of {self.split} in "
                f"{self.image_dir}; the {lost:,} captions of the missing images are left out")


def image_corpus(
    image_dir: str | os.PathLike[str], split: str = DEFAULT_SPLIT,
    data_dir: str | os.PathLike[str] | None = None,
) -> ImageCorpus:
    """The images of ``split`` (``task1/image_splits/{split}.txt``) present in ``image_dir``.

    Names from the split file are joined to the folder with :func:`data.safe_join`, so no
    entry can point outside it. Some missing images are allowed (their captions are left
    out, see :attr:`ImageCorpus.note`); none found is an error.

    Raises:
        MultimodalError: the folder does not exist, or holds none of the split's images.
        DataNotFoundError: the split's image list is missing.
        ValueError: unknown split.
    """
    raw = Path(image_dir).expanduser()
    if not raw.is_dir():
        raise MultimodalError(f"image folder {str(raw)!r} does not exist or is not a folder; "
                              f"{_README_HINT} and pass their folder")
    root = raw.resolve()
    entries = [image_file_name(e) for e in _data.load_image_ids(split, data_dir)]
    index: dict[str, int] = {}
    names: list[str] = []
    paths: list[Path] = []
    missing: list[str] = []
    seen: set[str] = set()
    for name in entries:
        if name in seen:
            continue
        seen.add(name)
        try:
            path = _data.safe_join(root, name)
        except ValueError:
            path = None
        if path is not None and path.is_file():
            index[name] = len(names)
            names.append(name)
            paths.append(path)
        else:
            missing.append(name)
    if not names:
        example = f" (expected files such as {entries[0]})" if entries else ""
        raise MultimodalError(
            f"found 0 of {len(seen):,} images of {split} in {root}{example}; {_README_HINT}"
        )
    return ImageCorpus(
        split=split, image_dir=root, names=tuple(names), paths=tuple(paths),
        line_image=tuple(index.get(n, -1) for n in entries), n_expected=len(seen),
        missing=tuple(missing),
    )


def caption_queries(
    corpus: ImageCorpus, lang: str, data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> tuple[list[str], list[int]]:
    """Captions of ``corpus.split`` in ``lang`` whose image was found, and each caption's
    relevant image (an index into ``corpus.names``); the first ``limit`` when given."""
    captions = _data.load_multi30k(corpus.split, lang, data_dir)
    if len(captions) != len(corpus.line_image):
        raise MultimodalError(
            f"{corpus.split}.{lang} has {len(captions):,} lines but its image list has "
            f"{len(corpus.line_image):,}; the Multi30k files do not belong together"
        )
    rows = [(c, i) for c, i in zip(captions, corpus.line_image) if i >= 0 and c.strip()]
    rows = rows[:limit] if limit else rows
    return [c for c, _ in rows], [i for _, i in rows]


@dataclass
class ImageEmbeddings:
    """Unit-norm image embeddings of the images that could be read.

    Attributes:
        vectors: ``(k, d)`` float32, one row per readable image.
        kept: for each row, the index of its image in the list given to :func:`encode_images`.
        names: file names of the kept images (row order).
        failed: ``(file name, reason)`` of every image that could not be read.
    """

    vectors: np.ndarray
    kept: list[int]
    names: list[str]
    failed: list[tuple[str, str]] = field(default_factory=list)


def _read_image(path: Path):
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def encode_images(
    teacher, paths: Sequence[str | os.PathLike[str]], batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> ImageEmbeddings:
    """Embed images with a CLIP teacher's vision tower.

    Images are opened with PIL one batch at a time (a 1,000-image split never sits in
    memory at once); an image that cannot be read (missing, truncated, not an image, a
    decompression bomb) is reported in ``failed`` and skipped.

    Args:
        teacher: a CLIP-family ``SentenceTransformer`` (:func:`is_clip_model`).
        paths: image files.
        batch_size: images per forward pass.
        progress: called with ``(done, total)`` after each batch.

    Raises:
        MultimodalError: ``teacher`` cannot embed images, or no image could be read.
    """
    from PIL import Image

    if not is_clip_model(teacher):
        raise MultimodalError("images need a CLIP-family teacher (one that embeds images)")
    bs = max(1, int(batch_size))
    rows: list[np.ndarray] = []
    kept: list[int] = []
    failed: list[tuple[str, str]] = []
    for start in range(0, len(paths), bs):
        batch = []
        for k in range(start, min(start + bs, len(paths))):
            p = Path(paths[k])
            try:
                batch.append(_read_image(p))
            # PIL signals a broken file with any of these (SyntaxError: bad PNG chunks).
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                failed.append((p.name, " ".join(str(exc).split()) or type(exc).__name__))
                continue
            kept.append(k)
        if batch:
            emb = teacher.encode(batch, batch_size=len(batch), convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
            rows.append(np.asarray(emb, dtype=np.float32))
        if progress is not None:
            progress(min(start + bs, len(paths)), len(paths))
    if not kept:
        first = f" (first: {failed[0][0]}: {failed[0][1]})" if failed else ""
        raise MultimodalError(f"none of the {len(paths):,} images could be read{first}")
    return ImageEmbeddings(np.concatenate(rows), kept, [Path(paths[k]).name for k in kept], failed)


# --------------------------------------------------------------------------- retrieval


@dataclass
class ImageRetrieval:
    """Caption→image retrieval results.

    Attributes:
        summary: ranx metrics per query, means and 95 % bootstrap intervals.
        ranking: the full image ranking of every caption.
        n_queries, n_images: sizes of the evaluated sets.
        notes: plain-language remarks (left-out captions, unreadable images).
    """

    summary: MetricSummary
    ranking: Ranking
    n_queries: int
    n_images: int
    notes: list[str] = field(default_factory=list)


def rank_images(
    caption_vectors: np.ndarray, image_vectors: np.ndarray, relevance: Sequence[int],
    image_ids: Sequence[str] | None = None, lang: str = "x", n_boot: int = 1000, seed: int = 0,
) -> ImageRetrieval:
    """Rank images by cosine for every caption and score the ranking with ranx.

    Args:
        caption_vectors: ``(q, d)`` caption embeddings.
        image_vectors: ``(n, d)`` image embeddings.
        relevance: ``q`` indices into ``image_vectors``: each caption's one relevant image.
        image_ids: ``n`` distinct document ids for ranx (default ``img{k}``).
        lang: caption language (a label only).
        n_boot, seed: bootstrap resamples and their seed.
    """
    q = unit_rows(np.asarray(caption_vectors, dtype=np.float32))
    d = unit_rows(np.asarray(image_vectors, dtype=np.float32))
    rel = [int(r) for r in relevance]
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise MultimodalError(
            f"caption embeddings are {q.shape[-1]}-d but image embeddings are {d.shape[-1]}-d: "
            "the caption model must live in the CLIP teacher's space (distil it against this "
            "teacher with --loss mse first)"
        )
    if len(rel) != q.shape[0] or not rel:
        raise MultimodalError(f"{q.shape[0]} captions but {len(rel)} relevance entries")
    if min(rel) < 0 or max(rel) >= d.shape[0]:
        raise MultimodalError("a relevance entry points outside the image list")
    ids = list(image_ids) if image_ids is not None else [f"img{k}" for k in range(d.shape[0])]
    if len(ids) != d.shape[0] or len(set(ids)) != len(ids):
        ids = [f"img{k}" for k in range(d.shape[0])]
    scores = (q @ d.T).astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")
    qids = [f"q{i}" for i in range(len(rel))]
    ranking = Ranking("dense", qids, order, np.take_along_axis(scores, order, 1))
    corpus = Corpus(name="images", doc_ids=tuple(ids), doc_texts=tuple(ids),
                      doc_images=tuple(range(len(ids))), queries={}, image_names=tuple(ids))
    qset = QuerySet(lang, tuple(qids), tuple(qids), tuple(rel), tuple((r,) for r in rel))
    per_query = per_query_metrics(ranking, qset, corpus, IMAGE_METRICS)
    return ImageRetrieval(summarize(per_query, n_boot=n_boot, seed=seed), ranking,
                          len(rel), d.shape[0])


def caption_to_image(
    model, teacher, captions: Sequence[str],
    images: Sequence[str | os.PathLike[str]] | ImageEmbeddings, relevance: Sequence[int],
    lang: str = "x", batch_size: int = 32, n_boot: int = 1000, seed: int = 0,
) -> ImageRetrieval:
    """Caption→image retrieval: ``model`` embeds the captions, ``teacher`` the images.

    Args:
        model: the caption encoder (a student distilled against ``teacher``, or the CLIP
            teacher itself for English captions).
        teacher: the CLIP teacher whose vision tower embeds the images.
        captions: query captions.
        images: image files, or their :class:`ImageEmbeddings` from :func:`encode_images`
            (to embed the images once for several models).
        relevance: for each caption, the index of its image in ``images`` (paths order).
        lang, batch_size, n_boot, seed: as in :func:`rank_images` / :func:`encode_images`.

    Captions whose image could not be read are left out (with a note).
    """
    if len(captions) != len(relevance):
        raise MultimodalError(f"{len(captions)} captions but {len(relevance)} relevance entries")
    check_caption_model(model, teacher)
    emb = (images if isinstance(images, ImageEmbeddings)
           else encode_images(teacher, images, batch_size))
    row_of = {k: r for r, k in enumerate(emb.kept)}
    keep = [i for i, r in enumerate(relevance) if int(r) in row_of]
    if not keep:
        raise MultimodalError("none of the captions has a readable image")
    texts = [captions[i] for i in keep]
    vecs = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                        normalize_embeddings=True, show_progress_bar=False)
    result = rank_images(np.asarray(vecs), emb.vectors, [row_of[int(relevance[i])] for i in keep],
                         image_ids=emb.names, lang=lang, n_boot=n_boot, seed=seed)
    if emb.failed:
        shown = "; ".join(f"{n}: {why}" for n, why in emb.failed[:3])
        more = f" and {len(emb.failed) - 3} more" if len(emb.failed) > 3 else ""
        result.notes.append(f"{len(emb.failed)} images could not be read ({shown}{more})")
    if len(keep) < len(captions):
        result.notes.append(
            f"{len(captions) - len(keep)} captions left out: their image could not be read")
    return result


def format_image_table(result: ImageRetrieval, head: str) -> str:
    """The metric table of ``optical retrieve-images`` (values in %, 95 % intervals)."""
    lines = [head, f"{result.n_queries:,} captions × {result.n_images:,} images",
             f"{'metric':<8} {'value':>5} {'95% CI':>13}"]
    for m in IMAGE_METRICS:
        lo, hi = result.summary.ci[m]
        lines.append(f"{METRIC_LABELS[m]:<8} {format_percent(result.summary.mean[m])} "
                     f"[{format_percent(lo)},{format_percent(hi)}]")
    lines.append("values in %; 95% CI: percentile bootstrap over captions")
    return "\n".join(lines + result.notes)
