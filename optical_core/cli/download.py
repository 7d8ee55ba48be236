"""``optical download``: Multi30k into the cache.
"""

from __future__ import annotations

from pathlib import Path

# -------------------------------------------------------------------- download


def add_download(sub) -> None:
    p = sub.add_parser("download", help="fetch the official Multi30k files into the cache")
    p.add_argument("--dest", default=None, help="target folder (default: the user cache)")
    p.add_argument("--task2", action="store_true", help="also the task2 (5 captions) files")
    p.set_defaults(func=run_download)


def run_download(args) -> int:
    from optical_core.data import download_multi30k
    from optical_core.safe_write import claim_output_folder

    dest = args.dest
    # A data root that already holds Multi30k is filled up; any other folder must be new,
    # empty or one optical made, so the files never land among the user's own.
    if dest is not None and not (Path(dest).expanduser() / "multi30k").is_dir():
        dest = claim_output_folder(dest, what="--dest")
    path = download_multi30k(dest=dest, task2=args.task2)
    print(f"Multi30k files are in {path}")
    return 0
