"""The project's cache root: one folder under which the data downloads (``data/``), the
document embeddings (``embeddings/``), the teacher's token caches (``teacher/``) and the
app's assets (``components/``) each keep a folder of their own."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable: the cache root (default ``~/.cache/optical-explorer``).
ENV_CACHE_DIR = "OPTICAL_CACHE_DIR"


def cache_root() -> Path:
    """The project's cache root: ``$OPTICAL_CACHE_DIR`` or ``~/.cache/optical-explorer``
    (absolute; it need not exist)."""
    env = os.environ.get(ENV_CACHE_DIR)
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "optical-explorer"
    return base.resolve()
