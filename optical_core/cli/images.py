"""The ``optical retrieve-images`` subcommand (registered by :mod:`optical_core.cli`).

Caption→image retrieval on a Multi30k split with the user's Flickr30k images: the CLIP
teacher embeds the images, the model under test (a student distilled against that teacher,
or the teacher itself) the captions in ``--lang``; prints MRR@10 and R@1/5/10 with 95 %
bootstrap intervals::

    optical retrieve-images --model runs/de-clip --teacher models/clip-ViT-B-32 \\
        --images ~/data/flickr30k-images --lang de --split test_2016_flickr
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Bootstrap resamples past this take minutes and add no precision worth it.
MAX_BOOTSTRAP = 100_000


def add_retrieve_images(sub) -> None:
    from optical_core.data import SPLITS
    from optical_core.retrieval.corpus import DEFAULT_SPLIT, QUERY_LANGS

    p = sub.add_parser(
        "retrieve-images", help="caption→image retrieval with a CLIP teacher (Flickr30k images)",
        description="Rank the images of a Multi30k split for each caption in --lang (the "
        "relevant image is the caption's own, from task1/image_splits). The CLIP teacher "
        "embeds the images; --model embeds the captions (default: the teacher itself).",
    )
    p.add_argument("--teacher", required=True,
                   help="CLIP model folder or cached hub id (e.g. a local copy of "
                   "sentence-transformers/clip-ViT-B-32)")
    p.add_argument("--model", default=None,
                   help="caption encoder: a model folder or Distillation run folder trained "
                   "against --teacher (default: the teacher)")
    p.add_argument("--images", required=True, help="folder of the Flickr30k images (*.jpg)")
    p.add_argument("--lang", choices=QUERY_LANGS, default="de", help="caption language")
    p.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT)
    p.add_argument("--limit", type=int, default=None, help="use the first N captions")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead")
    p.set_defaults(func=run_retrieve_images)


def run_retrieve_images(args) -> int:
    from optical_core.cli.common import CLIError
    from optical_core.encoders.base import resolve_model
    from optical_core.encoders.clip import check_caption_model, load_clip_teacher
    from optical_core.encoders.transformer import load_sentence_transformer
    from optical_core.retrieval.images import (
        caption_queries,
        caption_to_image,
        encode_images,
        format_image_table,
        image_corpus,
    )
    from optical_core.runs import resolve_model_dir

    quiet = getattr(args, "quiet", False)
    data_dir = getattr(args, "data_dir", None)

    def say(msg: str) -> None:
        if not quiet:
            print(f"… {msg}", file=sys.stderr, flush=True)

    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be at least 1, got {args.limit}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 10 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise CLIError(f"--bootstrap must lie in [10, {MAX_BOOTSTRAP:,}] resamples, "
                       f"got {args.bootstrap}")
    if not 0 <= args.seed < 2**32:
        raise CLIError(f"--seed must lie in [0, 2**32 - 1], got {args.seed}")
    if not Path(args.images).expanduser().is_dir():
        raise CLIError(f"--images {args.images} is not a folder; give the folder of the "
                       "Flickr30k *.jpg images")
    corpus = image_corpus(args.images, args.split, data_dir)
    if corpus.note:
        say(corpus.note)
    captions, relevance = caption_queries(corpus, args.lang, data_dir, args.limit)
    say(f"loading the teacher {args.teacher}")
    teacher = load_clip_teacher(args.teacher)
    model = teacher
    if args.model is not None:
        say(f"loading {args.model}")
        model = load_sentence_transformer(str(resolve_model_dir(resolve_model(args.model))), "cpu")
        check_caption_model(model, teacher)
    say(f"embedding {len(corpus.paths):,} images")
    images = encode_images(
        teacher, corpus.paths, args.batch_size,
        progress=None if quiet else lambda done, total: say(f"images {done:,}/{total:,}"),
    )
    result = caption_to_image(model, teacher, captions, images, relevance, lang=args.lang,
                                batch_size=args.batch_size, n_boot=args.bootstrap, seed=args.seed)
    if corpus.note:
        result.notes.insert(0, corpus.note)
    name = args.model or args.teacher
    if args.json:
        print(json.dumps({
            "model": name, "teacher": args.teacher, "split": args.split, "lang": args.lang,
            "n_queries": result.n_queries, "n_images": result.n_images,
            "mean": result.summary.mean,
            "ci": {m: list(v) for m, v in result.summary.ci.items()},
            "notes": result.notes,
        }, indent=1))
    else:
        print(format_image_table(
            result, f"{args.split}: {args.lang} caption → image, captions by {name}, "
                    f"images by {args.teacher}"))
    return 0
