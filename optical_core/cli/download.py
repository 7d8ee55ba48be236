"""``optical download``: Multi30k into the cache.
"""

from __future__ import annotations

# -------------------------------------------------------------------- download


def add_download(sub) -> None:
    p = sub.add_parser("download", help="fetch the official Multi30k files into the cache")
    p.add_argument("--dest", default=None, help="target folder (default: the user cache)")
    p.add_argument("--task2", action="store_true", help="also the task2 (5 captions) files")
    p.set_defaults(func=run_download)


def run_download(args) -> int:
    from optical_core.data import download_multi30k

    path = download_multi30k(dest=args.dest, task2=args.task2)
    print(f"Multi30k files are in {path}")
    return 0
