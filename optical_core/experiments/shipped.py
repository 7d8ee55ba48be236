"""The grids shipped with the source: every finished grid folder in ``grid-results/``.

A shipped grid is found by listing, not by name: a folder that holds the grid's
``config.toml`` (the command that made it is the comment in it) and its tables
(``cells.csv``) or report (``report.md``) is one, so a grid copied into ``grid-results/``
is offered without a code change. Superseded grids live one level down
(``grid-results/archive/…``) and are not listed.
"""

from __future__ import annotations

from pathlib import Path

from optical_core.experiments.tables import CONFIG_FILE, REPORT_FILE

#: A folder holding one of these beside its ``config.toml`` is a grid's output.
GRID_TABLES = ("cells.csv", REPORT_FILE)


def is_shipped_grid(folder: Path) -> bool:
    """Whether ``folder`` holds a grid's output: its ``config.toml`` and its ``cells.csv`` or
    ``report.md``."""
    return ((folder / CONFIG_FILE).is_file()
            and any((folder / name).is_file() for name in GRID_TABLES))


def shipped_grid_folders(root: Path, first: str | None = None) -> list[Path]:
    """Every grid folder directly in ``root`` (:func:`is_shipped_grid`), sorted by name with
    the folder named ``first`` (the default grid) at the front; ``[]`` when ``root`` is
    missing (an installed package without the source tree)."""
    if not root.is_dir():
        return []
    found = sorted((p for p in root.iterdir() if p.is_dir() and is_shipped_grid(p)),
                   key=lambda p: p.name)
    return sorted(found, key=lambda p: p.name != first)  # stable: the rest keep name order
