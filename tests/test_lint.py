"""ruff over the whole repository, with the settings of pyproject.toml: pycodestyle, pyflakes,
import order, line length 100 and no private name imported from another module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is a test requirement (requirements-test.txt)")
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, ("ruff check found these (fix them; `ruff check --fix` "
                                  "fixes the ones marked [*]):\n" + done.stdout + done.stderr)
