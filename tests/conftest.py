"""Shared fixtures: the real default encoder, tiny randomly initialised models, and the
fixtures that the test files of one package share (one section per package below).

Plain helpers (no fixtures) are in ``_helpers.py``, ``_distill_models.py`` (tiny BERTs),
``_clip_fixture.py`` (tiny CLIP, fake image folder) and ``_results_fixture.py``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _clip_fixture import draw_image, make_fake_multi30k, make_tiny_clip
from _distill_models import build_tiny_bert, make_tiny_model
from _helpers import REPO, token_emb
from _results_fixture import make_results

# Tests never reach a model hub, whatever the environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("OPTICAL_ALLOW_DOWNLOAD", None)

SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "browser" in item.nodeid:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def default_encoder():
    from optical_core.encoders.registry import load_encoder

    return load_encoder(None)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture()
def shared_data() -> Path:
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"Multi30k not found at {SHARED_DATA}")
    return SHARED_DATA


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------ data: test_data.py, test_gold.py


@pytest.fixture
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty download cache (``OPTICAL_CACHE_DIR``, returned) and no
    ``OPTICAL_DATA_DIR`` or download URL override, so that a developer's own cache or
    environment cannot leak into the data tests."""
    from optical_core import data
    from optical_core.caches import ENV_CACHE_DIR

    cache_root = tmp_path / "cache-root"
    monkeypatch.setenv(ENV_CACHE_DIR, str(cache_root))
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(data.ENV_DOWNLOAD_URL, raising=False)
    return cache_root


# ------------------------------------------------------------ the app: test_app_*.py


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No Multi30k and no gold sets anywhere (an empty data folder, and the app's cached view
    of what data there is cleared): the pages fall back to the demo corpus and pairs."""
    from ui.common import data_sources

    monkeypatch.setenv("OPTICAL_DATA_DIR", str(tmp_path / "empty"))
    data_sources.clear()
    yield
    data_sources.clear()


@pytest.fixture(scope="module")
def browser(server):
    """One chromium for a browser test module, started after the module's own ``server``
    fixture (its app server) and closed after the module's last test."""
    from browser_support import chromium

    with chromium() as b:
        yield b


# ------------------------------------------------------------ pairs: test_pairs_*.py


@pytest.fixture
def sharp():
    """Two 4-token texts whose tokens match one-to-one (orthogonal vectors, permuted)."""
    eye = np.eye(4)
    src = token_emb(["a", "dog", "runs", "."], eye)
    tgt = token_emb(["puppy", "a", ".", "running"], eye[[1, 0, 3, 2]])
    return src, tgt


@pytest.fixture
def blurry():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    src = token_emb(list("abcde"), base + 0.01 * rng.normal(size=(5, 16)))
    tgt = token_emb(list("vwxyz"), base + 0.01 * rng.normal(size=(5, 16)))
    return src, tgt


# ------------------------------------ retrieval: test_retrieval_*.py, test_cli_evaluate.py


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """An isolated embedding cache (env var, so every code path uses it)."""
    root = tmp_path_factory.mktemp("optical-cache")
    old = os.environ.get("OPTICAL_CACHE_DIR")
    os.environ["OPTICAL_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("OPTICAL_CACHE_DIR", None)
    else:
        os.environ["OPTICAL_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def encoder():
    from optical_core.encoders.registry import load_encoder

    return load_encoder()


@pytest.fixture(scope="module")
def demo():
    from optical_core.retrieval.corpus import demo_corpus

    return demo_corpus()


@pytest.fixture(scope="module")
def demo_index(encoder, demo, cache_root):
    from optical_core.retrieval.index import build_index

    return build_index(encoder, demo, tokens=True)


# ----------------- CLIP: test_encoders_clip.py, test_retrieval_images.py, test_cli_images.py


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def teacher(clip_dir):
    from optical_core.encoders.clip import load_clip_teacher

    return load_clip_teacher(str(clip_dir))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_fake_multi30k(tmp_path_factory.mktemp("m30k"))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    from _clip_fixture import NAMES

    folder = tmp_path_factory.mktemp("flickr30k-images")
    for k, name in enumerate(NAMES):
        draw_image(folder / name, k)
    return folder


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("student") / "tiny", seed=0)


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory, clip_dir, tiny_student):
    from optical_core.distill.config import DistillConfig
    from optical_core.distill.train import run_distillation

    cfg = DistillConfig(lang="de", data="demo", loss="mse", teacher=str(clip_dir),
                        student=tiny_student, pairs=64, batch_size=8, max_steps=24, lr=3e-3,
                        warmup_ratio=0.0, evaluate=False, probe_every=0, save_steps=1000)
    return run_distillation(cfg, tmp_path_factory.mktemp("runs") / "de-clip")


# ------------------------------------------ distill: test_distill_*.py, test_cli_distill.py


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_other(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("models2") / "tiny2", seed=1)


# --------------------------------------------------------- experiments: results folder


@pytest.fixture
def folder(tmp_path) -> Path:
    """A results folder (``_results_fixture.make_results``) for test_experiments_*.py."""
    return make_results(tmp_path / "results")
