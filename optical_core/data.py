"""Where the data lives, and Multi30k: its captions, image lists and download.

The gold word alignments are read by :mod:`optical_core.gold`, the packaged demo set by
:mod:`optical_core.demo_set`; both find their files through :func:`find_file` here.

Where the data lives
--------------------
Nothing here is committed to the repository. :func:`data_dir` picks the data root, in order:

1. an explicit ``override`` (the CLI's ``--data-dir``);
2. the environment variable ``OPTICAL_DATA_DIR``;
3. ``shared/data`` next to the repository (``<repo>/../shared/data``, found from this file
   and from the current working directory), when that folder exists;
4. the user cache ``$OPTICAL_CACHE_DIR/data`` (default ``~/.cache/optical-explorer/data``),
   which is where :func:`download_multi30k` writes.

The data root has the layout of the official repositories::

    <root>/multi30k/task1/raw/{split}.{lang}.gz
    <root>/multi30k/task1/image_splits/{split}.txt
    <root>/multi30k/task2/raw/{split}.{k}.{lang}.gz       (task2 split names: train, val, test_2016)
    <root>/gold_alignments/{pair}.src-tgt, {pair}.gold

A Multi30k file missing from the data root is also looked for in the download cache, so a
partial shared folder can be completed with ``optical download`` / ``download=True``.
A file that is in neither raises :class:`DataNotFoundError`, whose message names the file,
the folders searched and the fixes.

Conventions
-----------
* Captions are returned with surrounding whitespace stripped (some test_2018 cs lines carry
  trailing spaces; 46 fr/de lines carry a leading space).
* Split, language and pair names are checked against fixed sets before they become part of
  a path, and every path is checked to stay inside its data root.

Task 2 alignment (checked on the shared copy, commit a3d2e0d): every task2 file has as many
lines as ``task1/image_splits/{split}.txt`` (29000 / 1014 / 1000), and line i of task1 English
equals, character for character, one of the five task2 English captions of line i for 100 %
of lines in train, val and test_2016 (0 % when shifted by one line). So task2 line i
describes task1 image i. The task2 German captions are independent descriptions, not
translations (the task1 German line is among them for < 0.3 % of lines). Image names are
unique within each split and no image appears in two splits.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from optical_core.caches import ENV_CACHE_DIR, cache_root

# --------------------------------------------------------------------------- constants

ENV_DATA_DIR = "OPTICAL_DATA_DIR"
ENV_DOWNLOAD_URL = "OPTICAL_MULTI30K_URL"

#: Base of the official files; ``{base}/task1/raw/{split}.{lang}.gz`` etc.
OFFICIAL_BASE_URL = "https://github.com/multi30k/dataset/raw/master/data"

SPLITS: tuple[str, ...] = (
    "train",
    "val",
    "test_2016_flickr",
    "test_2017_flickr",
    "test_2017_mscoco",
    "test_2018_flickr",
)
LANGS: tuple[str, ...] = ("en", "de", "fr", "cs")
#: The languages' names in English, for labels.
LANG_NAMES: dict[str, str] = {"en": "English", "de": "German", "fr": "French", "cs": "Czech",
                             "ro": "Romanian"}

#: Languages present for each task1 split (Czech only for train, val, 2016 and 2018).
SPLIT_LANGS: dict[str, tuple[str, ...]] = {
    "train": ("en", "de", "fr", "cs"),
    "val": ("en", "de", "fr", "cs"),
    "test_2016_flickr": ("en", "de", "fr", "cs"),
    "test_2017_flickr": ("en", "de", "fr"),
    "test_2017_mscoco": ("en", "de", "fr"),
    "test_2018_flickr": ("en", "de", "fr", "cs"),
}
#: Number of lines of every task1 file of a split (and of its image_splits file).
SPLIT_SIZES: dict[str, int] = {
    "train": 29000,
    "val": 1014,
    "test_2016_flickr": 1000,
    "test_2017_flickr": 1000,
    "test_2017_mscoco": 461,
    "test_2018_flickr": 1071,
}

#: Task 2 (five independent captions per image): task1 split name -> task2 file split name.
TASK2_SPLITS: dict[str, str] = {"train": "train", "val": "val", "test_2016_flickr": "test_2016"}
TASK2_LANGS: tuple[str, ...] = ("en", "de")
TASK2_K: tuple[int, ...] = (1, 2, 3, 4, 5)

#: The gold word-alignment sets (:mod:`optical_core.gold`).
GOLD_PAIRS: tuple[str, ...] = ("enfr", "roen")
#: (source language, target language) of each gold set: roen has English on the target side.
GOLD_LANGS: dict[str, tuple[str, str]] = {"enfr": ("en", "fr"), "roen": ("ro", "en")}

WORD_RE = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
"""A word: letters/digits with inner apostrophes or hyphens, or one punctuation mark (the
demo set's tokenisation, and the default word segmentation of the encoders)."""


class DataNotFoundError(FileNotFoundError):
    """A data file is missing (or could not be downloaded); the message says how to fix it.

    Attributes:
        missing: the missing path relative to the data root (e.g. ``multi30k/task1/raw/val.cs.gz``).
        searched: the folders that were searched.
    """

    def __init__(self, message: str, missing: str = "", searched: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.missing = missing
        self.searched = [Path(p) for p in searched]


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """Download cache for data: ``$OPTICAL_CACHE_DIR/data`` or
    ``~/.cache/optical-explorer/data``."""
    return cache_root() / "data"


def _shared_candidates() -> list[Path]:
    cands = [Path(__file__).resolve().parents[2] / "shared" / "data"]
    with contextlib.suppress(OSError):  # the working directory may have been deleted
        cands.append(Path.cwd().resolve().parent / "shared" / "data")
    return cands


def _resolve_data_dir(override: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Return the data root and a short description of where it came from."""
    if override is not None and str(override) != "":
        return Path(override).expanduser().resolve(), "--data-dir / data_dir argument"
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser().resolve(), f"environment variable {ENV_DATA_DIR}"
    for cand in _shared_candidates():
        if cand.is_dir():
            return cand, "../shared/data next to the repository"
    return cache_dir(), f"download cache (${ENV_CACHE_DIR} or ~/.cache/optical-explorer)"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``override``, ``$OPTICAL_DATA_DIR``, ``../shared/data`` or the cache.

    The returned path is absolute and may not exist; use :func:`multi30k_available` or
    :func:`gold_available` to ask whether the data is there.
    """
    return _resolve_data_dir(override)[0]


def check_name(kind: str, value: object, allowed: Iterable[object]) -> None:
    """Raise ``ValueError`` naming ``kind``, ``value`` and the valid names unless ``value`` is
    one of ``allowed`` (names are checked before they become part of a path)."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(map(str, allowed))}")


def _check_split_lang(split: str, lang: str) -> None:
    check_name("Multi30k split", split, SPLITS)
    check_name("Multi30k language", lang, LANGS)
    if lang not in SPLIT_LANGS[split]:
        raise ValueError(
            f"Multi30k split {split!r} has no {lang!r} file; languages of {split}: "
            f"{', '.join(SPLIT_LANGS[split])}"
        )


def safe_join(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root / parts`` made absolute; raises ``ValueError`` if the result leaves ``root``.

    The root is resolved (symlinks followed); the joined part is normalised lexically, so a
    data folder made of symlinks to elsewhere still works while ``..`` or an absolute part
    cannot escape it.
    """
    base = Path(root).expanduser().resolve()
    for part in parts:
        if not part or "\x00" in part or Path(part).is_absolute():
            raise ValueError(f"invalid path component {part!r}")
    joined = Path(os.path.normpath(base.joinpath(*parts)))
    if joined != base and base not in joined.parents:
        raise ValueError(f"path {'/'.join(parts)!r} escapes the data folder {base}")
    return joined


def _task1_rel(split: str, lang: str) -> tuple[str, ...]:
    return ("multi30k", "task1", "raw", f"{split}.{lang}.gz")


def _image_rel(split: str) -> tuple[str, ...]:
    return ("multi30k", "task1", "image_splits", f"{split}.txt")


def _task2_rel(split2: str, k: int, lang: str) -> tuple[str, ...]:
    return ("multi30k", "task2", "raw", f"{split2}.{k}.{lang}.gz")


def _fix_hint(what: str = "Multi30k file") -> str:
    if what.startswith("gold"):
        return (
            f"Fix: set {ENV_DATA_DIR} or pass --data-dir to a folder that contains "
            "gold_alignments/{pair}.src-tgt and gold_alignments/{pair}.gold (the examples "
            "folder of awesome-align), or use load_gold_file() for files elsewhere."
        )
    return (
        f"Fix: set {ENV_DATA_DIR} or pass --data-dir to a folder laid out as "
        "<dir>/multi30k/task1/raw/... and <dir>/gold_alignments/..., or run `optical download` "
        "(Python: download_multi30k() or download=True) to fetch Multi30k from "
        "https://github.com/multi30k/dataset into the cache."
    )


def find_file(
    rel: tuple[str, ...],
    override: str | os.PathLike[str] | None,
    *,
    download: bool = False,
    use_cache: bool = True,
    what: str = "Multi30k file",
) -> Path:
    """The file ``rel`` (path parts under the data root, e.g. ``("gold_alignments",
    "enfr.gold")``): looked for in the data root of ``override`` (:func:`data_dir`), then in the
    download cache unless ``use_cache`` is off; with ``download`` a Multi30k file found in
    neither is fetched into the cache. Raises :class:`DataNotFoundError` (its message says
    ``what`` is missing, where it looked and how to fix it)."""
    root, source = _resolve_data_dir(override)
    searched: list[tuple[Path, str]] = [(root, source)]
    cache = cache_dir()
    if use_cache and cache != root:
        searched.append((cache, "download cache"))
    for folder, _ in searched:
        path = safe_join(folder, *rel)
        if path.is_file():
            return path
    relstr = "/".join(rel)
    if download and use_cache:
        base_url = os.environ.get(ENV_DOWNLOAD_URL) or OFFICIAL_BASE_URL
        _fetch(rel[1:], cache, base_url=base_url, timeout=30.0)
        return safe_join(cache, *rel)
    where = "; ".join(f"{folder} ({src})" for folder, src in searched)
    raise DataNotFoundError(
        f"{what} not found: {relstr}\nSearched: {where}\n{_fix_hint(what)}",
        missing=relstr,
        searched=[f for f, _ in searched],
    )


def multi30k_available(
    data_dir: str | os.PathLike[str] | None = None,
    splits: Iterable[str] = SPLITS,
    langs: Iterable[str] = LANGS,
    image_splits: bool = True,
) -> bool:
    """Whether every existing task1 file of ``splits`` × ``langs`` (and image list) can be found.

    Looks where the loaders look (data root, then the download cache); downloads nothing.
    """
    splits, langs = tuple(splits), tuple(langs)
    for s in splits:
        check_name("Multi30k split", s, SPLITS)
    for lang in langs:
        check_name("Multi30k language", lang, LANGS)
    rels = [_task1_rel(s, lang) for s in splits for lang in langs if lang in SPLIT_LANGS[s]]
    if image_splits:
        rels += [_image_rel(s) for s in splits]
    try:
        for rel in rels:
            find_file(rel, data_dir)
    except DataNotFoundError:
        return False
    return True


def gold_available(pair: str = "enfr", data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether both files of the gold alignment set ``pair`` are in the data root."""
    check_name("gold alignment pair", pair, GOLD_PAIRS)
    root = _resolve_data_dir(data_dir)[0]
    return all(
        safe_join(root, "gold_alignments", f"{pair}.{ext}").is_file() for ext in ("src-tgt", "gold")
    )


# --------------------------------------------------------------------------- reading


def _read_gzip_lines(path: Path) -> list[str]:
    # newline="" keeps a stray "\r" inside a caption; only "\n" ends a line.
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    return _split_lines(text)


def _read_text_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return _split_lines(f.read())


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def load_multi30k(
    split: str,
    lang: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> list[str]:
    """Task1 captions of ``split`` in ``lang``, one per line, whitespace-stripped.

    Args:
        split: one of :data:`SPLITS`.
        lang: one of :data:`LANGS` present for that split (:data:`SPLIT_LANGS`).
        data_dir: data root override (see :func:`data_dir`).
        download: fetch the file into the cache if it is missing.

    Raises:
        ValueError: unknown split / language or a combination that does not exist.
        DataNotFoundError: the file is missing (or the download failed).
    """
    _check_split_lang(split, lang)
    return _read_gzip_lines(find_file(_task1_rel(split, lang), data_dir, download=download))


def load_bitext(
    split: str,
    src_lang: str,
    tgt_lang: str = "en",
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    download: bool = False,
) -> list[tuple[str, str]]:
    """Aligned ``(src, tgt)`` caption pairs of a task1 split (line i with line i).

    ``limit`` keeps the first ``limit`` pairs (file order). Raises ``ValueError`` if the two
    files differ in length.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    _check_split_lang(split, src_lang)
    _check_split_lang(split, tgt_lang)
    src = load_multi30k(split, src_lang, data_dir, download=download)
    tgt = load_multi30k(split, tgt_lang, data_dir, download=download)
    if len(src) != len(tgt):
        raise ValueError(
            f"Multi30k {split}: {src_lang} has {len(src)} lines but {tgt_lang} has {len(tgt)}"
        )
    pairs = list(zip(src, tgt))
    return pairs if limit is None else pairs[:limit]


def load_image_ids(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> list[str]:
    """Image file name of every line of a task1 split (``task1/image_splits/{split}.txt``).

    COCO names carry a ``#<caption id>`` suffix, kept as is.
    """
    check_name("Multi30k split", split, SPLITS)
    return _read_text_lines(find_file(_image_rel(split), data_dir, download=download))


def load_task2(
    split: str,
    lang: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    check: bool = True,
) -> list[list[str]]:
    """The five independent task2 captions of every image: ``result[k - 1][i]``, k = 1..5.

    Args:
        split: a task1 name (``train``, ``val``, ``test_2016_flickr``) or the task2 file name
            ``test_2016``.
        lang: ``en`` or ``de``.
        check: verify that all five files have as many lines as the task1 image list of the
            split (``ValueError`` otherwise). Line i then describes image i of
            :func:`load_image_ids` (verified on the shared copy, see the module docstring).
    """
    if split == "test_2016":
        split = "test_2016_flickr"
    check_name("Multi30k task2 split", split, (*TASK2_SPLITS, "test_2016"))
    check_name("Multi30k task2 language", lang, TASK2_LANGS)
    split2 = TASK2_SPLITS[split]
    caps = [
        _read_gzip_lines(find_file(_task2_rel(split2, k, lang), data_dir, download=download))
        for k in TASK2_K
    ]
    if check:
        n_images = len(load_image_ids(split, data_dir, download=download))
        sizes = [len(c) for c in caps]
        if any(n != n_images for n in sizes):
            raise ValueError(
                f"Multi30k task2 {split2}.{{1..5}}.{lang} have {sizes} lines but "
                f"task1/image_splits/{split}.txt lists {n_images} images"
            )
    return caps


# --------------------------------------------------------------------------- download


def _fetch(rel: Sequence[str], dest_root: Path, base_url: str, timeout: float) -> bool:
    """Download ``{base_url}/{rel}`` to ``dest_root/multi30k/{rel}`` atomically.

    ``rel`` is relative to the official ``data/`` folder (e.g. ``("task1", "raw", "val.de.gz")``).
    Returns ``False`` if the file was already there. The bytes go to a temporary file in the
    destination folder, are validated (whole gzip stream decodes, or UTF-8 text for ``.txt``),
    then ``os.replace`` moves them in place; on any failure nothing is left behind.
    """
    target = safe_join(dest_root, "multi30k", *rel)
    if target.is_file():
        return False
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme not in ("http", "https"):
        raise ValueError(f"base_url must be http(s), got {base_url!r}")
    url = base_url.rstrip("/") + "/" + "/".join(urllib.parse.quote(p) for p in rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                req = urllib.request.Request(url, headers={"User-Agent": "optical-explorer"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    expected = resp.headers.get("Content-Length")
                    written = 0
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        written += len(chunk)
                if expected is not None and expected.isdigit() and int(expected) != written:
                    # http.client returns a short body without raising when the peer hangs up.
                    raise http.client.IncompleteRead(b"", int(expected) - written)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                reason: object = f"HTTP {exc.code} {exc.reason}"
            else:
                reason = getattr(exc, "reason", None) or exc
            raise DataNotFoundError(
                f"could not download {url}: {reason}\n"
                f"Check the network or the URL, or copy the files by hand into "
                f"{target.parent} (or point {ENV_DATA_DIR} / --data-dir at a copy).",
                missing="multi30k/" + "/".join(rel),
                searched=[dest_root],
            ) from exc
        _validate_download(tmp, url, "multi30k/" + "/".join(rel))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache file need not be private
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return True


def _validate_download(path: Path, url: str, missing: str) -> None:
    try:
        if url.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                while f.read(1 << 20):
                    pass
        else:
            text = path.read_bytes().decode("utf-8")
            if not text.strip() or text.lstrip().startswith("<"):
                raise ValueError("empty file or an HTML page")
    except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise DataNotFoundError(
            f"downloaded {url} but it is not a valid "
            f"{'gzip' if url.endswith('.gz') else 'UTF-8 text'} file ({exc}); nothing was saved.",
            missing=missing,
        ) from exc


def download_multi30k(
    dest: str | os.PathLike[str] | None = None,
    base_url: str = OFFICIAL_BASE_URL,
    splits: Iterable[str] = SPLITS,
    langs: Iterable[str] = LANGS,
    timeout: float = 30,
    image_splits: bool = True,
    task2: bool = False,
) -> Path:
    """Fetch the official Multi30k files into ``dest`` (default: :func:`cache_dir`).

    Files already present are skipped; each new file is written atomically and checked to
    be a complete gzip stream before it appears. Combinations that do not exist (cs for the
    2017 tests) are skipped.

    Args:
        dest: data root to fill; files land in ``dest/multi30k/task1/...``.
        base_url: URL of the official ``data`` folder (a local mirror in tests).
        splits, langs: task1 splits and languages to fetch.
        timeout: seconds per request.
        image_splits: also fetch ``task1/image_splits/{split}.txt``.
        task2: also fetch the task2 en/de captions of the splits that have them.

    Returns:
        The data root (usable as ``data_dir=`` / ``--data-dir``).

    Raises:
        DataNotFoundError: a download failed or returned an invalid file.
    """
    root = Path(dest).expanduser().resolve() if dest is not None else cache_dir()
    splits, langs = tuple(splits), tuple(langs)
    for s in splits:
        check_name("Multi30k split", s, SPLITS)
    for lang in langs:
        check_name("Multi30k language", lang, LANGS)
    rels: list[tuple[str, ...]] = []
    for s in splits:
        rels += [_task1_rel(s, lang)[1:] for lang in langs if lang in SPLIT_LANGS[s]]
        if image_splits:
            rels.append(_image_rel(s)[1:])
        if task2 and s in TASK2_SPLITS:
            rels += [
                _task2_rel(TASK2_SPLITS[s], k, lang)[1:]
                for lang in langs
                if lang in TASK2_LANGS
                for k in TASK2_K
            ]
    if not rels:
        raise ValueError(f"nothing to download for splits={splits} langs={langs}")
    for rel in rels:
        _fetch(rel, root, base_url=base_url, timeout=timeout)
    return root
