"""Tests of optical_core.data: the data root, Multi30k and its download (the gold sets are
tested in test_gold.py, the demo set in test_demo_set.py).

Tests that read the real data use ``../shared/data`` next to the repository and skip when it
is absent. Every test runs with a private, empty download cache (``OPTICAL_CACHE_DIR``) and
without ``OPTICAL_DATA_DIR``, so a developer's own cache or environment cannot leak in.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from optical_core import data as D
from optical_core import demo_set as DS
from optical_core import gold as G
from optical_core.caches import ENV_CACHE_DIR

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_M30K = (SHARED / "multi30k" / "task1" / "raw" / "val.en.gz").is_file()
HAS_GOLD = (SHARED / "gold_alignments" / "enfr.gold").is_file()
needs_m30k = pytest.mark.skipif(not HAS_M30K, reason=f"Multi30k not found under {SHARED}")
needs_gold = pytest.mark.skipif(not HAS_GOLD, reason=f"gold alignments not found under {SHARED}")


@pytest.fixture(autouse=True)
def _isolated_env(isolated_data_env: Path) -> Path:
    return isolated_data_env


# --------------------------------------------------------------------------- locations


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv(D.ENV_DATA_DIR, str(b))
    assert D.data_dir(a) == a.resolve()
    assert D.data_dir(str(a)) == a.resolve()
    assert D.data_dir() == b.resolve()  # returned even though it does not exist
    monkeypatch.delenv(D.ENV_DATA_DIR)
    monkeypatch.setattr(D, "_shared_candidates", lambda: [tmp_path / "nope" / "shared" / "data"])
    assert D.data_dir() == D.cache_dir() == (tmp_path / "cache-root" / "data").resolve()


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_CACHE_DIR)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert D.cache_dir() == (tmp_path / ".cache" / "optical-explorer" / "data").resolve()


@needs_m30k
def test_default_data_dir_is_shared() -> None:
    assert D.data_dir().resolve() == SHARED.resolve()
    assert D.multi30k_available()
    assert D.multi30k_available(SHARED, splits=["val"], langs=["cs"])


def test_env_dir_without_data_gives_helpful_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(D.ENV_DATA_DIR, str(empty))
    with pytest.raises(D.DataNotFoundError) as info:
        D.load_multi30k("val", "en")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for part in ("multi30k/task1/raw/val.en.gz", str(empty.resolve()), "OPTICAL_DATA_DIR",
                 "--data-dir", "optical download", str(D.cache_dir())):
        assert part in msg, (part, msg)
    assert info.value.missing == "multi30k/task1/raw/val.en.gz"
    assert empty.resolve() in info.value.searched
    with pytest.raises(D.DataNotFoundError, match="enfr.src-tgt") as info:
        G.load_gold("enfr")
    assert "gold_alignments/{pair}.gold" in str(info.value)
    assert "load_gold_file" in str(info.value)
    with pytest.raises(D.DataNotFoundError, match="image_splits/val.txt"):
        D.load_image_ids("val")
    assert not D.multi30k_available()
    assert not D.gold_available("enfr")


def test_missing_file_is_found_in_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cached = D.cache_dir() / "multi30k" / "task1" / "raw" / "val.fr.gz"
    cached.parent.mkdir(parents=True)
    with gzip.open(cached, "wt", encoding="utf-8") as f:
        f.write("  Une ligne. \nDeux\n")
    assert D.load_multi30k("val", "fr", data_dir=empty) == ["Une ligne.", "Deux"]


# --------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize(
    "call",
    [
        lambda: D.load_multi30k("../../../etc/passwd", "en"),
        lambda: D.load_multi30k("val", "../en"),
        lambda: D.load_multi30k("val/../train", "en"),
        lambda: D.load_multi30k("/etc/passwd", "en"),
        lambda: D.load_image_ids("../image_splits/train"),
        lambda: D.load_task2("../task1/val", "en"),
        lambda: G.load_gold("../gold_alignments/enfr"),
        lambda: D.load_bitext("val", "cs", "../../en"),
    ],
)
def test_path_traversal_in_names_rejected(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_safe_join(tmp_path: Path) -> None:
    assert D.safe_join(tmp_path, "a", "b.txt") == tmp_path.resolve() / "a" / "b.txt"
    for parts in (("..", "x"), ("a", "..", "..", "x"), ("/etc",), ("",), ("a\x00b",)):
        with pytest.raises(ValueError):
            D.safe_join(tmp_path, *parts)


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="test_2016_flickr") as info:
        D.load_multi30k("test2016", "en")
    assert "train" in str(info.value)
    with pytest.raises(ValueError, match="en, de, fr, cs"):
        D.load_multi30k("val", "ro")
    with pytest.raises(ValueError, match="no 'cs' file"):
        D.load_multi30k("test_2017_flickr", "cs")
    with pytest.raises(ValueError, match="enfr, roen"):
        G.load_gold("deen")
    with pytest.raises(ValueError, match="en-para"):
        DS.load_demo("es")


def test_constants_consistent() -> None:
    assert set(D.SPLIT_LANGS) == set(D.SPLITS) == set(D.SPLIT_SIZES)
    cs_splits = {s for s, langs in D.SPLIT_LANGS.items() if "cs" in langs}
    assert cs_splits == {"train", "val", "test_2016_flickr", "test_2018_flickr"}
    assert all(set(langs) <= set(D.LANGS) for langs in D.SPLIT_LANGS.values())


# --------------------------------------------------------------------------- real Multi30k


@needs_m30k
@pytest.mark.parametrize(
    "split,lang", [(s, lang) for s in D.SPLITS for lang in D.SPLIT_LANGS[s]]
)
def test_multi30k_line_counts(split: str, lang: str) -> None:
    lines = D.load_multi30k(split, lang, data_dir=SHARED)
    assert len(lines) == D.SPLIT_SIZES[split]
    assert all(line == line.strip() and line for line in lines)


@needs_m30k
def test_expected_sizes() -> None:
    assert (D.SPLIT_SIZES["train"], D.SPLIT_SIZES["val"]) == (29000, 1014)
    assert (D.SPLIT_SIZES["test_2016_flickr"], D.SPLIT_SIZES["test_2018_flickr"]) == (1000, 1071)


@needs_m30k
def test_cs_2018_trailing_spaces_stripped() -> None:
    raw = SHARED / "multi30k" / "task1" / "raw" / "test_2018_flickr.cs.gz"
    with gzip.open(raw, "rt", encoding="utf-8") as f:
        raw_lines = f.read().split("\n")[:-1]
    assert sum(line != line.rstrip() for line in raw_lines) > 0  # the raw file has them
    lines = D.load_multi30k("test_2018_flickr", "cs", data_dir=SHARED)
    assert lines == [line.strip() for line in raw_lines]
    assert not any(line.endswith((" ", "\t")) for line in lines)


@needs_m30k
def test_bitext_alignment() -> None:
    pairs = D.load_bitext("test_2016_flickr", "de", data_dir=SHARED)
    en = D.load_multi30k("test_2016_flickr", "en", data_dir=SHARED)
    de = D.load_multi30k("test_2016_flickr", "de", data_dir=SHARED)
    assert pairs == list(zip(de, en))
    assert D.load_bitext("val", "cs", "en", data_dir=SHARED, limit=5) == list(
        zip(D.load_multi30k("val", "cs", SHARED)[:5], D.load_multi30k("val", "en", SHARED)[:5])
    )
    assert D.load_bitext("val", "fr", data_dir=SHARED, limit=0) == []
    with pytest.raises(ValueError):
        D.load_bitext("val", "fr", data_dir=SHARED, limit=-1)


def test_bitext_length_mismatch(tmp_path: Path) -> None:
    raw = tmp_path / "multi30k" / "task1" / "raw"
    raw.mkdir(parents=True)
    for lang, n in (("en", 3), ("de", 2)):
        with gzip.open(raw / f"val.{lang}.gz", "wt", encoding="utf-8") as f:
            f.write("".join(f"line {i}\n" for i in range(n)))
    with pytest.raises(ValueError, match="3 lines but en has|2 lines but en has 3"):
        D.load_bitext("val", "de", data_dir=tmp_path)


@needs_m30k
@pytest.mark.parametrize("split", D.SPLITS)
def test_image_ids(split: str) -> None:
    ids = D.load_image_ids(split, data_dir=SHARED)
    assert len(ids) == D.SPLIT_SIZES[split]
    assert len(set(ids)) == len(ids)
    assert all(".jpg" in i for i in ids)


@needs_m30k
@pytest.mark.parametrize("split", ["train", "val", "test_2016_flickr"])
def test_task2_shape_and_order(split: str) -> None:
    caps = D.load_task2(split, "en", data_dir=SHARED)
    n = D.SPLIT_SIZES[split]
    assert len(caps) == 5 and all(len(c) == n for c in caps)
    # The finding documented in optical_core.data: task1 English line i is one of the five
    # task2 English captions of line i, so task2 line i describes task1 image i.
    en = D.load_multi30k(split, "en", data_dir=SHARED)
    assert all(en[i] in {c[i] for c in caps} for i in range(n))
    de = D.load_task2(split, "de", data_dir=SHARED)
    assert len(de) == 5 and all(len(c) == n for c in de)


@needs_m30k
def test_task2_split_alias_and_bad_names() -> None:
    assert D.load_task2("test_2016", "de", data_dir=SHARED) == D.load_task2(
        "test_2016_flickr", "de", data_dir=SHARED
    )
    with pytest.raises(ValueError, match="test_2016_flickr"):
        D.load_task2("test_2017_flickr", "en", data_dir=SHARED)
    with pytest.raises(ValueError, match="en, de"):
        D.load_task2("val", "fr", data_dir=SHARED)


def test_task2_count_mismatch_raises(tmp_path: Path) -> None:
    m30k = tmp_path / "multi30k"
    (m30k / "task1" / "image_splits").mkdir(parents=True)
    (m30k / "task1" / "image_splits" / "val.txt").write_text("1.jpg\n2.jpg\n3.jpg\n")
    (m30k / "task2" / "raw").mkdir(parents=True)
    for k in D.TASK2_K:
        with gzip.open(m30k / "task2" / "raw" / f"val.{k}.en.gz", "wt", encoding="utf-8") as f:
            f.write("a\nb\n" if k == 4 else "a\nb\nc\n")
    with pytest.raises(ValueError, match="lists 3 images"):
        D.load_task2("val", "en", data_dir=tmp_path)
    caps = D.load_task2("val", "en", data_dir=tmp_path, check=False)
    assert [len(c) for c in caps] == [3, 3, 3, 2, 3]


# --------------------------------------------------------------------------- download


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args: object) -> None:  # keep pytest output quiet
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


class _LyingHandler(_Handler):
    """Announces more bytes than it sends, then hangs up (a dropped connection)."""

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = b"1.jpg\n2.jpg\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + 100))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


@contextlib.contextmanager
def _serve(root: Path, handler: type[_Handler] = _Handler) -> Iterator[tuple[str, list[str]]]:
    requests: list[str] = []
    cls = type("H", (handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(cls, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/data", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _mirror(tmp_path: Path, files: list[str]) -> Path:
    """A folder laid out like the official repository (data/task1/...), with shared copies."""
    site = tmp_path / "site"
    for rel in files:
        dst = site / "data" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / "multi30k" / rel, dst)
    return site


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@needs_m30k
def test_download_from_local_server(tmp_path: Path) -> None:
    site = _mirror(tmp_path, ["task1/raw/val.en.gz", "task1/raw/val.cs.gz",
                              "task1/image_splits/val.txt"])
    dest = tmp_path / "dl"
    with _serve(site) as (url, requests):
        root = D.download_multi30k(dest, base_url=url, splits=["val"], langs=["en", "cs"])
        assert root == dest.resolve()
        assert sorted(requests) == sorted(
            ["/data/task1/raw/val.en.gz", "/data/task1/raw/val.cs.gz",
             "/data/task1/image_splits/val.txt"]
        )
        D.download_multi30k(dest, base_url=url, splits=["val"], langs=["en", "cs"])
        assert len(requests) == 3  # present files are skipped
    assert sorted(p.name for p in _leftovers(dest)) == ["val.cs.gz", "val.en.gz", "val.txt"]
    assert D.load_bitext("val", "cs", data_dir=root) == D.load_bitext("val", "cs", data_dir=SHARED)
    assert D.load_image_ids("val", data_dir=root) == D.load_image_ids("val", data_dir=SHARED)
    assert D.multi30k_available(root, splits=["val"], langs=["en", "cs"])
    assert not D.multi30k_available(root, splits=["val"], langs=["de"])


@needs_m30k
def test_download_task2(tmp_path: Path) -> None:
    files = [f"task2/raw/val.{k}.en.gz" for k in D.TASK2_K]
    site = _mirror(tmp_path, [*files, "task1/raw/val.en.gz", "task1/image_splits/val.txt"])
    with _serve(site) as (url, requests):
        root = D.download_multi30k(tmp_path / "dl", base_url=url, splits=["val"], langs=["en"],
                                   task2=True)
    assert len(requests) == 7
    assert D.load_task2("val", "en", data_dir=root) == D.load_task2("val", "en", data_dir=SHARED)


@needs_m30k
def test_loader_download_flag_uses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _mirror(tmp_path, ["task1/raw/val.cs.gz"])
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(D.ENV_DATA_DIR, str(empty))
    with _serve(site) as (url, requests):
        monkeypatch.setenv(D.ENV_DOWNLOAD_URL, url)
        with pytest.raises(D.DataNotFoundError):
            D.load_multi30k("val", "cs")  # download=False never touches the network
        assert requests == []
        lines = D.load_multi30k("val", "cs", download=True)
        assert requests == ["/data/task1/raw/val.cs.gz"]
    assert len(lines) == 1014
    assert (D.cache_dir() / "multi30k" / "task1" / "raw" / "val.cs.gz").is_file()
    assert D.load_multi30k("val", "cs") == lines  # served from the cache, server is gone


@needs_m30k
def test_download_invalid_gzip_leaves_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site"
    raw = site / "data" / "task1" / "raw"
    raw.mkdir(parents=True)
    good = (SHARED / "multi30k" / "task1" / "raw" / "val.en.gz").read_bytes()
    (raw / "val.en.gz").write_bytes(good[: len(good) // 2])  # truncated gzip
    (raw / "val.de.gz").write_bytes(b"<html>rate limited</html>")  # not gzip at all
    dest = tmp_path / "dl"
    with _serve(site) as (url, requests):
        for lang in ("en", "de"):
            with pytest.raises(D.DataNotFoundError, match="not a valid gzip") as info:
                D.download_multi30k(dest, base_url=url, splits=["val"], langs=[lang],
                                    image_splits=False)
            assert f"val.{lang}.gz" in str(info.value)
    assert _leftovers(dest) == []  # no final file, no temporary .part file


def test_download_network_errors(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "data").mkdir(parents=True)
    dest = tmp_path / "dl"
    with _serve(site) as (url, _):
        with pytest.raises(D.DataNotFoundError, match="could not download .*val.en.gz: HTTP 404"):
            D.download_multi30k(dest, base_url=url, splits=["val"], langs=["en"])
    with _serve(site, _LyingHandler) as (url, _):
        with pytest.raises(D.DataNotFoundError, match="could not download .*val.txt"):
            D.download_multi30k(dest, base_url=url, splits=["val"], langs=[])
    # a closed port: connection refused
    with pytest.raises(D.DataNotFoundError, match="could not download"):
        D.download_multi30k(dest, base_url=url, splits=["val"], langs=["en"], timeout=5)
    assert _leftovers(dest) == []
    with pytest.raises(ValueError, match="http"):
        D.download_multi30k(dest, base_url="file:///etc", splits=["val"], langs=["en"])
    with pytest.raises(ValueError):
        D.download_multi30k(dest, base_url=url, splits=["../val"], langs=["en"])


def test_no_streamlit_import() -> None:
    code = "import sys, optical_core.data; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert out.stdout.strip() == "False"
