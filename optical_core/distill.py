"""OT knowledge distillation (OPTICAL) and the sentence-level MSE baseline.

A frozen *teacher* that knows English encodes the English side of a parallel pair; the
*student* (initialised from the teacher by default) encodes the foreign side. The OPTICAL
loss moves the student's foreign tokens onto the teacher's English tokens along an optimal
transport plan::

    C   = 1 - cos(student(x) tokens, teacher(en) tokens)      (B, n, m), padding masked
    P*  = Sinkhorn(C, a, b, ε)  detached                      (envelope theorem)
    L   = mean over the batch of  Σ_ij P*_ij C_ij

With ``solver="unbalanced"`` the marginals are KL-relaxed with strength τ, so a token with
no good partner keeps part of its mass instead of being forced onto some English token.

Special tokens ([CLS], [SEP]) and padding get marginal 0, so they carry no mass. The
baseline is the "make multilingual" MSE loss of Reimers & Gurevych 2020 (sentence-transformers
``MSELoss``): student(en) and student(x) both regress onto teacher(en) sentence embeddings.
``loss="ot+mse"`` adds both with weights.

Training goes through ``SentenceTransformerTrainer`` (checkpoints, resume, DDP under
``torchrun``). :func:`run_distillation` is the one entry point used by the CLI, the
Distillation page (through :mod:`optical_core.jobs`) and the tests. It writes a run folder
(see :mod:`optical_core.runs`): ``run.json``, ``probe.json``, ``model/`` and ``checkpoints/``.

Defaults follow DESIGN.md: ε = 0.01 with 300 log-domain iterations for training (a diffuse
plan at ε = 0.05 pulls each foreign token towards a blend of English tokens and hurt both
retrieval and AER), 64 tokens, batch 32, lr 5e-4 (the best lr of both methods on 5k pairs).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import runs as runs_mod
from .ot import OTInputError, sinkhorn_batch, sinkhorn_unbalanced_batch

LOSSES: tuple[str, ...] = ("ot", "mse", "ot+mse")
OT_SOLVERS: tuple[str, ...] = ("sinkhorn", "unbalanced", "exact")
MARGINALS: tuple[str, ...] = ("uniform", "norm")
DATA_SOURCES: tuple[str, ...] = ("multi30k", "demo")
#: Test hook, unset in normal use: seconds to pause inside every checkpoint write, after the
#: model files and before the optimizer state and ``trainer_state.json``, so that a crash
#: test can kill the process mid-write at a known point (tests/test_crash_safety.py).
ENV_SLOW_SAVE = "OPTICAL_TEST_SLOW_SAVE"

#: The probe pair whose plan is snapshotted during training, per language (English, foreign).
PROBES: dict[str, tuple[str, str]] = {
    "de": ("A dog runs along the beach.", "Ein Hund läuft am Strand entlang."),
    "fr": ("A dog runs along the beach.", "Un chien court le long de la plage."),
    "cs": ("A dog runs along the beach.", "Pes běží po pláži."),
}

ProgressFn = Callable[[dict[str, Any]], None]


class DistillError(RuntimeError):
    """A distillation job that cannot start or go on; the message says what to do."""


class CheckpointError(DistillError):
    """A checkpoint folder that cannot be resumed from (missing or damaged files)."""


class CancelEvent(threading.Event):
    """A cancel flag that can say why; :func:`run_distillation` stores the reason as the
    run's ``note``."""

    def __init__(self) -> None:
        super().__init__()
        self.reason: str | None = None

    def cancel(self, reason: str | None = None) -> None:
        """Set the flag; the first reason given is kept."""
        if reason and self.reason is None:
            self.reason = reason
        self.set()


# =========================================================================== loss


def _model_inputs(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fresh dict with only the tokenizer outputs (sentence-transformers modules add keys
    to the dict they are given, so the student and the teacher must not share one)."""
    return {k: v for k, v in features.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")}


class OpticalLoss(nn.Module):
    """OT distillation loss ``mean_b <P*_b, C_b>`` between student(x) and teacher(en) tokens.

    A sentence-transformers loss: ``forward(sentence_features, labels)`` with the columns
    ``(english, non_english)`` in that order (labels are ignored; the teacher runs online).

    Args:
        model: the student ``SentenceTransformer``; trained, kept as ``self.model`` (the
            trainer swaps the DDP-wrapped model into exactly that attribute).
        teacher: the teacher ``SentenceTransformer``; frozen (``requires_grad_(False)``,
            ``eval()``, run under ``torch.no_grad()``) and kept as ``self.teacher``.
        epsilon: entropic regularisation in cosine-cost units (costs span [0, 2]).
        max_iter: Sinkhorn iteration budget per pair.
        tol: Sinkhorn stops a pair once its marginal error is below this.
        solver: ``"sinkhorn"`` (batched, padded, log-stabilised), ``"unbalanced"``
            (batched log-domain Sinkhorn with KL-relaxed marginals, strength ``tau``; see
            :func:`~optical_core.ot.sinkhorn_unbalanced_batch`) or ``"exact"`` (POT's
            network simplex pair by pair: slow, for checks and small runs).
        tau: marginal relaxation of ``"unbalanced"`` in cosine-cost units, > 0; small τ
            leaves more mass untransported, large τ approaches balanced Sinkhorn (and
            needs more iterations). With unbalanced OT the loss is still ``<P*, C>`` with
            ``P*`` detached: the KL terms of the unbalanced objective do not depend on
            ``C``, so its envelope gradient w.r.t. ``C`` is still ``P*``.
        marginals: ``"uniform"`` over real tokens, or ``"norm"`` (proportional to each
            token vector's norm, detached).
        align_english: also add the OT loss between student(en) and teacher(en), which keeps
            the student's English side where the teacher's is.
        ot_weight, mse_weight: weights of the OT term and of the sentence-level MSE term
            (``MSELoss`` of sentence-transformers on student(en), student(x) vs teacher(en)).

    After each call ``last_components`` holds the unweighted terms as floats and
    ``last_ot_stats`` the Sinkhorn diagnostics (mean iterations, share of converged pairs,
    and for ``"unbalanced"`` the mean transported mass).
    """

    def __init__(
        self,
        model,
        teacher,
        epsilon: float = 0.01,
        max_iter: int = 300,
        tol: float = 1e-6,
        solver: str = "sinkhorn",
        marginals: str = "uniform",
        align_english: bool = False,
        ot_weight: float = 1.0,
        mse_weight: float = 0.0,
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise DistillError("ε must be a finite number > 0")
        if max_iter < 1:
            raise DistillError("the Sinkhorn iteration budget must be at least 1")
        if solver not in OT_SOLVERS:
            raise DistillError(f"unknown OT solver {solver!r}; choose one of {OT_SOLVERS}")
        if not (math.isfinite(tau) and tau > 0):
            raise DistillError("τ (the marginal relaxation of unbalanced OT) must be a finite number > 0")
        if marginals not in MARGINALS:
            raise DistillError(f"unknown marginals {marginals!r}; choose one of {MARGINALS}")
        if ot_weight < 0 or mse_weight < 0 or ot_weight + mse_weight <= 0:
            raise DistillError("loss weights must be >= 0 and not both 0")
        self.model = model
        # Not an nn.Module attribute: the teacher must not show up in the loss's parameters,
        # state dict or DDP wrapping.
        teacher.eval()
        teacher.requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)
        self.epsilon = float(epsilon)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.solver = solver
        self.tau = float(tau)
        self.marginals = marginals
        self.align_english = bool(align_english)
        self.ot_weight = float(ot_weight)
        self.mse_weight = float(mse_weight)
        self._same_tokenizer = _same_vocab(model.tokenizer, teacher.tokenizer)
        self._student_special = _special_ids(model.tokenizer)
        self._teacher_special = _special_ids(teacher.tokenizer)
        self._mse = None
        if self.mse_weight > 0:
            from sentence_transformers.sentence_transformer.losses import MSELoss

            self._mse = MSELoss(model)
        self.last_components: dict[str, float] = {}
        self.last_ot_stats: dict[str, float] = {}

    # -- pieces ----------------------------------------------------------------

    def _teacher_features(self, en_features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._same_tokenizer:
            return _model_inputs(en_features)
        student = getattr(self.model, "module", self.model)  # unwrap DDP
        texts = student.tokenizer.batch_decode(en_features["input_ids"], skip_special_tokens=True)
        feats = _tokenize(self.teacher, texts)
        dev = en_features["input_ids"].device
        return {k: v.to(dev) for k, v in feats.items() if isinstance(v, torch.Tensor)}

    @staticmethod
    def _mask(features: dict[str, torch.Tensor], special: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` bool: real, non-special tokens (all real tokens if a row has none)."""
        attn = features["attention_mask"].bool()
        ids = features["input_ids"]
        mask = attn & ~torch.isin(ids, special.to(ids.device))
        empty = mask.sum(1) == 0
        if empty.any():
            mask[empty] = attn[empty]
        return mask

    def _marginal(self, mask: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        w = mask.to(tokens.dtype)
        if self.marginals == "norm":
            w = w * tokens.detach().norm(dim=-1)
        return w / w.sum(1, keepdim=True).clamp_min(1e-12)

    def ot_cost(
        self, x_tokens: torch.Tensor, x_mask: torch.Tensor, y_tokens: torch.Tensor, y_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pair transport cost ``<P*, C>`` (``(B,)``), the plans and the costs.

        ``x`` are the (differentiable) student tokens, ``y`` the teacher tokens.
        """
        from .ot import cost_matrix

        cost = cost_matrix(x_tokens, y_tokens.to(x_tokens.dtype), "cosine")  # (B, n, m)
        a = self._marginal(x_mask, x_tokens)
        b = self._marginal(y_mask, y_tokens)
        with torch.no_grad():
            plan = self._plan(cost.detach(), a, b)
        per_pair = (plan * cost).sum(dim=(1, 2))
        return per_pair, plan, cost

    def _plan(self, cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.solver == "exact":
            import ot as pot

            plans = torch.zeros_like(cost)
            for k in range(cost.shape[0]):
                rows, cols = a[k] > 0, b[k] > 0
                ak = a[k][rows].double().cpu().numpy()
                bk = b[k][cols].double().cpu().numpy()
                ck = cost[k][rows][:, cols].double().cpu().numpy()
                pk = pot.emd(ak / ak.sum(), bk / bk.sum(), ck)
                block = torch.as_tensor(pk, dtype=cost.dtype, device=cost.device)
                plans[k][rows.nonzero().squeeze(1).unsqueeze(1), cols.nonzero().squeeze(1)] = block
            self.last_ot_stats = {"iterations": 0.0, "converged": 1.0}
            return plans
        opts = dict(epsilon=self.epsilon, max_iter=self.max_iter, tol=self.tol)
        try:
            if self.solver == "unbalanced":
                res = sinkhorn_unbalanced_batch(cost, a, b, tau=self.tau, **opts)
            else:
                res = sinkhorn_batch(cost, a, b, **opts)
        except OTInputError as exc:
            raise DistillError(f"the OT plan could not be computed: {exc}") from exc
        self.last_ot_stats = {
            "iterations": float(res.iterations.float().mean()),
            "converged": float(res.converged.float().mean()),
            "marginal_error": float(res.marginal_error.float().max()),
        }
        if self.solver == "unbalanced":
            self.last_ot_stats["mass"] = float(res.plan.sum(dim=(1, 2)).float().mean())
        return res.plan.detach()

    # -- forward ---------------------------------------------------------------

    def forward(self, sentence_features: Sequence[dict[str, torch.Tensor]], labels=None) -> torch.Tensor:
        feats = list(sentence_features)
        if len(feats) != 2:
            raise DistillError(
                f"OpticalLoss expects two text columns (english, non_english), got {len(feats)}"
            )
        en_f, x_f = feats
        device = en_f["input_ids"].device
        if next(self.teacher.parameters()).device != device:  # the trainer moves only the student
            self.teacher.to(device)
        t_feats = self._teacher_features(en_f)
        with torch.no_grad():
            t_out = self.teacher(dict(t_feats))
        t_tok = t_out["token_embeddings"].detach()
        t_mask = self._mask(t_feats, self._teacher_special)
        s_x = self.model(_model_inputs(x_f))
        x_mask = self._mask(x_f, self._student_special)
        need_en = self.align_english or self._mse is not None
        s_en = self.model(_model_inputs(en_f)) if need_en else None

        total = torch.zeros((), device=s_x["token_embeddings"].device)
        comps: dict[str, float] = {}
        if self.ot_weight > 0:
            per_pair, _, _ = self.ot_cost(s_x["token_embeddings"], x_mask, t_tok, t_mask)
            ot_loss = per_pair.mean()
            comps["ot"] = float(ot_loss.detach())
            if self.align_english:
                if not self._same_tokenizer:
                    raise DistillError("align_english needs the student and teacher to share a tokenizer")
                en_mask = self._mask(en_f, self._student_special)
                per_en, _, _ = self.ot_cost(s_en["token_embeddings"], en_mask, t_tok, t_mask)
                comps["ot_en"] = float(per_en.mean().detach())
                ot_loss = ot_loss + per_en.mean()
            total = total + self.ot_weight * ot_loss
        if self._mse is not None:
            target = t_out["sentence_embedding"].detach()
            mse = self._mse.compute_loss_from_embeddings(
                [s_en["sentence_embedding"], s_x["sentence_embedding"]], [target, target]
            )
            comps["mse"] = float(mse.detach())
            total = total + self.mse_weight * mse
        self.last_components = comps
        return total

    # -- probe -----------------------------------------------------------------

    @torch.no_grad()
    def probe(self, src_text: str, en_text: str) -> dict[str, Any]:
        """The plan between student(``src_text``) and teacher(``en_text``) tokens, as the loss
        sees it (special tokens dropped), with the student in eval mode."""
        student = self.model
        student = getattr(student, "module", student)  # unwrap DDP
        was_training = student.training
        student.eval()
        try:
            sf = _tokenize(student, [src_text])
            tf = _tokenize(self.teacher, [en_text])
            dev = next(student.parameters()).device
            sf = {k: v.to(dev) for k, v in sf.items() if isinstance(v, torch.Tensor)}
            tf = {k: v.to(dev) for k, v in tf.items() if isinstance(v, torch.Tensor)}
            s_tok = student(_model_inputs(sf))["token_embeddings"]
            t_tok = self.teacher(_model_inputs(tf))["token_embeddings"]
            sm = self._mask(sf, self._student_special)
            tm = self._mask(tf, self._teacher_special)
            per_pair, plan, cost = self.ot_cost(s_tok, sm, t_tok, tm)
        finally:
            student.train(was_training)
        rows, cols = sm[0], tm[0]
        p = plan[0][rows][:, cols].float().cpu().numpy()
        c = cost[0][rows][:, cols].float().cpu().numpy()
        return {
            "src_tokens": student.tokenizer.convert_ids_to_tokens(sf["input_ids"][0][rows].tolist()),
            "en_tokens": self.teacher.tokenizer.convert_ids_to_tokens(tf["input_ids"][0][cols].tolist()),
            "plan": np.round(p, 5).tolist(),
            "cost": np.round(c, 4).tolist(),
            "ot_cost": float(per_pair[0]),
        }


def _tokenize(model, texts: list[str]) -> dict[str, Any]:
    fn = getattr(model, "preprocess", None) or model.tokenize
    return fn(texts)


def _special_ids(tokenizer) -> torch.Tensor:
    ids = sorted({int(i) for i in (tokenizer.all_special_ids or []) if i is not None})
    return torch.tensor(ids or [-1], dtype=torch.long)


def _same_vocab(t1, t2) -> bool:
    if t1 is t2:
        return True
    try:
        return type(t1) is type(t2) and t1.get_vocab() == t2.get_vocab() and (
            getattr(t1, "do_lower_case", None) == getattr(t2, "do_lower_case", None)
        )
    except Exception:  # pragma: no cover - exotic tokenizers
        return False


# ====================================================================== evaluator


def mrr_and_accuracy(q: np.ndarray, d: np.ndarray, k: int = 10) -> dict[str, float]:
    """x→en retrieval from unit vectors: query i's relevant document is document i.

    Returns MRR@k, Recall@1 (x→en translation accuracy), en→x accuracy and their mean.
    """
    sims = q @ d.T
    n = sims.shape[0]
    diag = sims[np.arange(n), np.arange(n)]
    # rank = 1 + number of documents scoring strictly higher (ties resolved in favour).
    rank = 1 + (sims > diag[:, None]).sum(1)
    rr = np.where(rank <= k, 1.0 / rank, 0.0)
    acc_x2en = float((rank == 1).mean())
    rank_t = 1 + (sims.T > diag[:, None]).sum(1)
    acc_en2x = float((rank_t == 1).mean())
    return {
        f"mrr@{k}": float(rr.mean()),
        "accuracy_x2en": acc_x2en,
        "accuracy_en2x": acc_en2x,
        "accuracy": (acc_x2en + acc_en2x) / 2,
    }


def _evaluator_base():
    from .encoders import locked_import  # a page may be importing sentence_transformers too

    return locked_import("sentence_transformers.sentence_transformer.evaluation").SentenceEvaluator


class RetrievalEvaluator(_evaluator_base()):
    """x→en dense retrieval on parallel lines (query foreign line i, relevant English line i).

    Cosine of pooled, normalised student embeddings on both sides. Metrics: ``mrr@10``
    (primary), ``accuracy_x2en`` (Recall@1), ``accuracy_en2x`` and ``accuracy`` (their mean,
    the "translation accuracy" of sentence-transformers' TranslationEvaluator).
    """

    def __init__(self, src_texts: Sequence[str], en_texts: Sequence[str], name: str = "val",
                 batch_size: int = 64) -> None:
        super().__init__()
        if len(src_texts) != len(en_texts) or not src_texts:
            raise DistillError("the evaluation set needs the same, non-zero number of lines per side")
        self.src_texts = list(src_texts)
        self.en_texts = list(en_texts)
        self.name = name
        self.batch_size = batch_size
        self.primary_metric = "mrr@10"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        model = getattr(model, "module", model)
        was_training = model.training
        try:
            q = model.encode(self.src_texts, batch_size=self.batch_size, convert_to_numpy=True,
                             normalize_embeddings=True, show_progress_bar=False)
            d = model.encode(self.en_texts, batch_size=self.batch_size, convert_to_numpy=True,
                             normalize_embeddings=True, show_progress_bar=False)
        finally:
            model.train(was_training)
        metrics = mrr_and_accuracy(np.asarray(q, dtype=np.float32), np.asarray(d, dtype=np.float32))
        return self.prefix_name_to_metrics(metrics, self.name)


# ========================================================================= config


@dataclass
class DistillConfig:
    """Everything that defines a distillation run (stored in ``run.json``).

    Attributes:
        lang: foreign language (``de``, ``fr``, ``cs``).
        pairs: number of training pairs (the first ``pairs`` lines of Multi30k train),
            to simulate a low-resource setting.
        loss: ``ot`` (OPTICAL), ``mse`` (Reimers & Gurevych) or ``ot+mse``.
        epochs, batch_size, lr, warmup_ratio, seed, max_steps (overrides epochs if > 0).
        max_tokens: tokens per sentence (student and teacher ``max_seq_length``).
        teacher, student: model id or folder; ``None`` = the embedded MiniLM. The student
            starts from ``student`` or, when that is ``None``, from the teacher's weights
            (from the embedded MiniLM when the teacher is a CLIP model; see :func:`load_models`).
        epsilon, sinkhorn_iters, sinkhorn_tol, ot_solver, marginals, align_english:
            the OT loss (see :class:`OpticalLoss`).
        ot_tau: marginal relaxation τ of ``ot_solver="unbalanced"`` (cosine-cost units).
        ot_weight, mse_weight: weights of the two terms of ``ot+mse``.
        data: ``multi30k`` or ``demo`` (the packaged hand-written pairs, for tests/offline).
        eval_split: Multi30k split for evaluation (``val``); eval_limit: its first N lines.
        eval_steps: evaluate every N steps (besides before training and after each epoch);
            0 turns step evaluation off; ``evaluate=False`` turns evaluation off.
        probe_every: plan snapshot of the probe pair every N steps (0 = off).
        save_steps: trainer checkpoint every N steps (and at each epoch end and on cancel).
        track_aer: compute word-alignment AER on the en–fr gold set at every evaluation.
        data_dir: Multi30k data root override.
    """

    lang: str = "de"
    pairs: int = 5000
    loss: str = "ot"
    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 5e-4
    warmup_ratio: float = 0.1
    seed: int = 42
    max_steps: int = 0
    max_tokens: int = 64
    teacher: str | None = None
    student: str | None = None
    epsilon: float = 0.01
    sinkhorn_iters: int = 300
    sinkhorn_tol: float = 1e-6
    ot_solver: str = "sinkhorn"
    ot_tau: float = 1.0
    marginals: str = "uniform"
    align_english: bool = False
    ot_weight: float = 1.0
    mse_weight: float = 1.0
    data: str = "multi30k"
    eval_split: str = "val"
    eval_limit: int = 0
    evaluate: bool = True
    eval_steps: int = 0
    probe_every: int = 10
    save_steps: int = 200
    save_total_limit: int = 2
    track_aer: bool = False
    data_dir: str | None = None

    def validate(self) -> DistillConfig:
        if self.lang not in PROBES:
            raise DistillError(f"unknown language {self.lang!r}; choose one of {tuple(PROBES)}")
        if self.loss not in LOSSES:
            raise DistillError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.data not in DATA_SOURCES:
            raise DistillError(f"unknown data source {self.data!r}; choose one of {DATA_SOURCES}")
        if self.ot_solver not in OT_SOLVERS:
            raise DistillError(f"unknown OT solver {self.ot_solver!r}; choose one of {OT_SOLVERS}")
        if self.marginals not in MARGINALS:
            raise DistillError(f"unknown marginals {self.marginals!r}; choose one of {MARGINALS}")
        checks = [
            (self.pairs >= 1, "the number of pairs must be at least 1"),
            (self.epochs > 0 or self.max_steps > 0, "epochs must be > 0"),
            (self.batch_size >= 1, "the batch size must be at least 1"),
            (math.isfinite(self.lr) and self.lr > 0, "the learning rate must be > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must lie in [0, 1)"),
            (8 <= self.max_tokens <= 512, "max_tokens must lie in [8, 512]"),
            (math.isfinite(self.epsilon) and self.epsilon > 0, "ε must be > 0"),
            (self.sinkhorn_iters >= 1, "the Sinkhorn iteration budget must be at least 1"),
            (math.isfinite(self.ot_tau) and self.ot_tau > 0,
             "τ (the marginal relaxation of unbalanced OT) must be > 0"),
            (self.ot_weight >= 0 and self.mse_weight >= 0, "loss weights must be >= 0"),
            (self.save_steps >= 1, "save_steps must be at least 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DistillError(msg)
        if self.loss == "ot+mse" and self.ot_weight + self.mse_weight <= 0:
            raise DistillError("ot+mse needs a positive OT or MSE weight")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ========================================================================== data


def load_pairs(cfg: DistillConfig, split: str = "train", limit: int | None = None) -> list[tuple[str, str]]:
    """``(english, foreign)`` pairs for training (``split="train"``) or evaluation.

    ``data="demo"`` uses the packaged demo pairs of the language (repeated to ``limit``
    for training), so that tests and offline demos need no Multi30k copy.
    """
    from . import data

    if cfg.data == "demo":
        demo = [(p.src, p.tgt) for p in data.load_demo(cfg.lang)]
        if split != "train" or not limit:
            return demo
        return [demo[i % len(demo)] for i in range(limit)]
    try:
        bitext = data.load_bitext(split, cfg.lang, "en", data_dir=cfg.data_dir, limit=None)
    except data.DataNotFoundError as exc:
        raise DistillError(f"{exc}\n(or train on the packaged demo pairs: --demo-data on the "
                           "command line, data='demo' in Python)") from exc
    pairs = [(en, x) for x, en in bitext if x.strip() and en.strip()]
    return pairs[:limit] if limit else pairs


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "transformers", "sentence_transformers", "accelerate", "datasets", "ot", "numpy"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out


def load_models(cfg: DistillConfig):
    """Fresh (uncached) teacher and student ``SentenceTransformer`` objects on CPU.

    With a CLIP-family teacher the student defaults to the embedded MiniLM (not the teacher)
    and is fitted to the teacher's text embeddings by
    :func:`optical_core.multimodal.fit_student_to_clip` (a ``Dense`` projection when the
    widths differ).
    """
    from .encoders import ModelLoadError, _load_sentence_transformer, resolve_model
    from .multimodal import fit_student_to_clip, is_clip_model

    try:
        teacher = _load_sentence_transformer(resolve_model(cfg.teacher), "cpu")
        clip = is_clip_model(teacher)
        student_id = cfg.student if cfg.student is not None else (None if clip else cfg.teacher)
        student = _load_sentence_transformer(
            str(runs_mod.resolve_model_dir(resolve_model(student_id))), "cpu"
        )
    except ModelLoadError as exc:
        raise DistillError(str(exc)) from exc
    teacher.max_seq_length = cfg.max_tokens
    student.max_seq_length = cfg.max_tokens
    if clip:
        fit_student_to_clip(student, teacher, seed=cfg.seed)
    return teacher, student


def build_loss(cfg: DistillConfig, student, teacher) -> nn.Module:
    """The loss module of ``cfg.loss`` (``mse`` → sentence-transformers ``MSELoss``).

    A CLIP-family teacher takes ``mse`` only. CLIP ties images to one vector per caption,
    the projected end-of-text state of a causally masked text tower; its other token states
    were never trained towards the image–text space (and early ones do not see the whole
    caption), so OT onto them, projected or not, would pull the student somewhere images are
    not. Multilingual CLIP was distilled with sentence-level MSE for the same reason.
    """
    if cfg.loss == "mse":
        from sentence_transformers.sentence_transformer.losses import MSELoss

        return MSELoss(student)
    from .multimodal import is_clip_model

    if is_clip_model(teacher):
        raise DistillError(
            f"loss {cfg.loss!r} aligns the teacher's token embeddings, but a CLIP teacher has "
            "only its pooled caption embedding in the image–text space; use --loss mse with "
            "a CLIP teacher"
        )
    return OpticalLoss(
        student, teacher, epsilon=cfg.epsilon, max_iter=cfg.sinkhorn_iters, tol=cfg.sinkhorn_tol,
        solver=cfg.ot_solver, tau=cfg.ot_tau, marginals=cfg.marginals,
        align_english=cfg.align_english,
        ot_weight=cfg.ot_weight if cfg.loss == "ot+mse" else 1.0,
        mse_weight=cfg.mse_weight if cfg.loss == "ot+mse" else 0.0,
    )


def build_dataset(cfg: DistillConfig, pairs: list[tuple[str, str]], teacher):
    """A ``datasets.Dataset`` with columns ``english``, ``non_english`` (and ``label``, the
    teacher's English sentence embeddings, for the MSE baseline)."""
    from datasets import Dataset

    cols: dict[str, Any] = {"english": [p[0] for p in pairs], "non_english": [p[1] for p in pairs]}
    if cfg.loss == "mse":
        emb = teacher.encode(cols["english"], batch_size=64, convert_to_numpy=True,
                             show_progress_bar=False)
        cols["label"] = np.asarray(emb, dtype=np.float32).tolist()
    return Dataset.from_dict(cols)


# ====================================================================== checkpoints


def checkpoint_dirs(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Trainer checkpoints of a run, oldest first."""
    base = Path(run_dir) / runs_mod.CHECKPOINT_DIR
    if not base.is_dir():
        return []
    found = []
    for p in base.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and p.name[11:].isdigit():
            found.append((int(p.name[11:]), p))
    return [p for _, p in sorted(found)]


def validate_checkpoint(path: str | os.PathLike[str]) -> None:
    """Check that a trainer checkpoint folder can be resumed from.

    Looks at the files the trainer will read: ``trainer_state.json`` (JSON), the model
    (``modules.json`` and a readable ``model.safetensors`` header) and ``optimizer.pt`` /
    ``scheduler.pt`` (intact zip archives, as ``torch.save`` writes them; they are loaded
    later with ``weights_only=True``).

    Raises:
        CheckpointError: naming the damaged file and what to do.
    """
    import json

    p = Path(path)
    fix = (
        f"Delete the folder {p} to resume from the previous checkpoint, or start a new run "
        "without --resume."
    )

    def fail(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {p.name} of run {p.parent.parent.name} is damaged: {what}. {fix}")

    if not p.is_dir():
        raise fail("it is not a folder")
    state = p / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except FileNotFoundError:
        raise fail("trainer_state.json is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"trainer_state.json is unreadable ({type(exc).__name__})") from None
    if not (p / "modules.json").is_file():
        raise fail("modules.json is missing (not a sentence-transformers checkpoint)")
    weights = sorted(p.rglob("*.safetensors"))
    if not weights:
        raise fail("it holds no .safetensors weights")
    from safetensors import safe_open

    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as f:
                keys = list(f.keys())
                if keys:
                    f.get_slice(keys[-1])
        except Exception as exc:  # safetensors raises its own error types
            raise fail(f"{w.relative_to(p)} is not a valid safetensors file ({exc})") from None
    for name in ("optimizer.pt", "scheduler.pt"):
        f = p / name
        if not f.is_file():
            raise fail(f"{name} is missing")
        try:
            with zipfile.ZipFile(f) as z:
                bad = z.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise fail(f"{name} is not a valid torch archive ({exc})") from None
        if bad is not None:
            raise fail(f"{name} has a corrupt entry {bad}")


def checkpoint_complete(path: str | os.PathLike[str]) -> bool:
    """Whether the trainer finished writing a checkpoint folder.

    The trainer writes ``trainer_state.json`` last (after the model, optimizer, scheduler
    and RNG files) and not atomically, so a folder without a readable one was cut short by
    a crash or kill mid-write.
    """
    import json

    try:
        json.loads((Path(path) / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def last_checkpoint(run_dir: str | os.PathLike[str], skipped: list[Path] | None = None) -> Path | None:
    """The newest checkpoint of a run that can be resumed from (``None`` if none).

    Newer folders whose write was cut short (:func:`checkpoint_complete`) are passed over and
    appended to ``skipped``. A complete checkpoint goes through :func:`validate_checkpoint`:
    damage found there raises :class:`CheckpointError` rather than silently falling back.
    """
    for cp in reversed(checkpoint_dirs(run_dir)):
        if not checkpoint_complete(cp):
            if skipped is not None:
                skipped.append(cp)
            continue
        validate_checkpoint(cp)
        return cp
    return None


def _forget_after(record: dict[str, Any], probe_doc: dict[str, Any], resume_from: Path | None) -> None:
    """Drop the losses, evaluations and probe snapshots logged after the checkpoint a resume
    starts from (all of them without one): a crashed process logged steps past its last
    checkpoint, and those steps are trained again."""
    last = int(resume_from.name[11:]) if resume_from is not None else -1
    record["losses"] = [x for x in record.get("losses", []) if x[0] <= last]
    record["evals"] = [e for e in record.get("evals", []) if e.get("step", 0) <= last]
    if "snapshots" in probe_doc:
        probe_doc["snapshots"] = [s for s in probe_doc["snapshots"] if s.get("step", 0) <= last]


def _set_aside(incomplete: list[Path], resume_from: Path | None) -> str:
    """Rename cut-short checkpoints to ``incomplete-checkpoint-N-<time>`` (the trainer would
    otherwise write into them again and rotate by their stale times); return the note."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for cp in incomplete:
        os.replace(cp, cp.with_name(f"incomplete-{cp.name}-{stamp}"))
    names = ", ".join(cp.name for cp in incomplete)
    goes_on = f"from {resume_from.name}" if resume_from else "from step 0 (no complete checkpoint)"
    return (f"set aside the incomplete checkpoint(s) {names} (their write was interrupted) "
            f"as incomplete-<name>-{stamp}; resuming {goes_on}")


# ======================================================================= callback


def _make_callback_class():
    from transformers import TrainerCallback

    class _DistillCallback(TrainerCallback):
        """Progress, loss, evaluation and probe-plan reporting; clean stop on cancel.

        Args:
            recorder: the :class:`_RunRecorder` of the run (rank 0) or ``None``.
            loss: the loss module (for the probe and the loss components).
            probe: ``(english, foreign)`` probe pair or ``None``.
            probe_every: steps between probe snapshots (0 = only first and last).
            cancel: set to stop after the current step (a checkpoint is still saved).
            aer: ``model -> AER (%) or None``, added to every evaluation's metrics as
                ``aer_enfr`` (``None``: not tracked).
        """

        def __init__(self, recorder, loss, probe, probe_every: int, cancel: threading.Event | None,
                     aer: Callable[[Any], float | None] | None = None):
            self.recorder = recorder
            self.loss = loss
            self.probe = probe
            self.probe_every = probe_every
            self.cancel = cancel
            self.aer = aer
            self.cancelled = False
            self.t0 = time.monotonic()
            self.step0 = 0

        def _snapshot(self, step: int) -> None:
            if self.recorder is None or self.probe is None or not isinstance(self.loss, OpticalLoss):
                return
            if self.recorder.has_probe(step):
                return
            snap = self.loss.probe(self.probe[1], self.probe[0])
            self.recorder.add_probe(step, snap)

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()
            self.step0 = state.global_step
            if self.recorder is not None:
                self.recorder.update(max_steps=state.max_steps, step=state.global_step)
                self._snapshot(state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if self.recorder is not None:
                done = state.global_step - self.step0
                rate = done / max(time.monotonic() - self.t0, 1e-9)
                eta = (state.max_steps - state.global_step) / rate if rate > 0 else None
                comps = getattr(self.loss, "last_components", {}) or {}
                self.recorder.step(state.global_step, state.max_steps, state.epoch or 0.0, eta, comps)
                if self.probe_every and state.global_step % self.probe_every == 0:
                    self._snapshot(state.global_step)
            if self.cancel is not None and self.cancel.is_set():
                self.cancelled = True
                control.should_training_stop = True
                control.should_save = True
                control.should_evaluate = False
            return control

        def on_epoch_end(self, args, state, control, **kw):
            if self.cancelled:
                control.should_evaluate = False
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            if self.recorder is not None and logs and "loss" in logs:
                self.recorder.loss(state.global_step, float(logs["loss"]), logs.get("learning_rate"))
            return control

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if self.recorder is not None and metrics:
                clean = {k[5:] if k.startswith("eval_") else k: float(v) for k, v in metrics.items()
                         if isinstance(v, (int, float)) and k != "epoch"
                         and not k.endswith(("_runtime", "per_second"))}
                aer = self.aer(kw["model"]) if self.aer is not None else None
                if aer is not None:
                    clean["aer_enfr"] = aer
                self.recorder.eval(state.global_step, state.epoch or 0.0, clean)
            return control

        def on_train_end(self, args, state, control, **kw):
            if self.recorder is not None:
                self._snapshot(state.global_step)
            return control

    return _DistillCallback


# ======================================================================= recorder


class _RunRecorder:
    """Keeps ``run.json`` / ``probe.json`` up to date (rank 0 only) and forwards events to
    the user's progress function. Writes are atomic and throttled to one per second,
    except for status changes, evaluations and probes."""

    def __init__(self, run_dir: Path, record: dict[str, Any], probe: dict[str, Any],
                 progress: ProgressFn | None) -> None:
        self.run_dir = run_dir
        self.record = record
        self.probe_doc = probe
        self.progress = progress
        self._last_write = 0.0
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            with contextlib.suppress(Exception):
                self.progress(event)

    def write(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_write < 1.0:
            return
        with self._lock:
            self.record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            self.record["updated_ts"] = now
            runs_mod.write_json_atomic(self.run_dir / runs_mod.RUN_FILE, self.record)
            self._last_write = now

    def update(self, **kw) -> None:
        self.record.update(kw)
        self.write(force=True)

    def status(self, status: str, **kw) -> None:
        self.record["status"] = status
        self.record.update(kw)
        self.write(force=True)
        self.emit({"kind": "status", "status": status, **kw})

    def step(self, step: int, max_steps: int, epoch: float, eta: float | None, comps: dict) -> None:
        self.record.update(step=step, max_steps=max_steps, epoch=epoch)
        self.write()
        self.emit({"kind": "step", "step": step, "max_steps": max_steps, "epoch": epoch,
                   "eta_s": eta, "components": dict(comps)})

    def loss(self, step: int, value: float, lr: float | None) -> None:
        self.record.setdefault("losses", []).append([step, round(value, 6)])
        self.emit({"kind": "loss", "step": step, "loss": value, "lr": lr})

    def eval(self, step: int, epoch: float, metrics: dict[str, float]) -> None:
        entry = {"step": step, "epoch": round(float(epoch), 4), "metrics": metrics}
        self.record.setdefault("evals", []).append(entry)
        self.write(force=True)
        self.emit({"kind": "eval", **entry})

    def has_probe(self, step: int) -> bool:
        return any(s["step"] == step for s in self.probe_doc.get("snapshots", []))

    def add_probe(self, step: int, snap: dict[str, Any]) -> None:
        doc = self.probe_doc
        doc["src_tokens"], doc["en_tokens"] = snap["src_tokens"], snap["en_tokens"]
        doc.setdefault("snapshots", []).append(
            {"step": step, "plan": snap["plan"], "ot_cost": snap["ot_cost"]}
        )
        runs_mod.write_json_atomic(self.run_dir / runs_mod.PROBE_FILE, doc)
        self.emit({"kind": "probe", "step": step, **snap})


# ============================================================================ run


@dataclass
class RunResult:
    """What :func:`run_distillation` returns."""

    run_dir: Path
    status: str
    model_dir: Path | None
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


def _world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def aer_on_gold(model, limit: int | None = None, data_dir: str | None = None) -> float | None:
    """Word-alignment AER (%) of ``model`` on the en–fr gold set (``None`` if it is absent)."""
    from . import data
    from .encoders import Encoder
    from .pairs import score_gold

    try:
        gold = data.load_gold("enfr", data_dir)
    except data.DataNotFoundError:
        return None
    gold = gold[:limit] if limit else gold
    base = getattr(model, "module", model)
    was = base.training
    try:
        return 100.0 * score_gold(Encoder(base, "student"), gold).aer
    finally:
        base.train(was)


def run_distillation(
    config: DistillConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    train_pairs: list[tuple[str, str]] | None = None,
    eval_pairs: list[tuple[str, str]] | None = None,
) -> RunResult:
    """Train a student by OT / MSE distillation and write a run folder.

    Args:
        config: the run's settings (ignored on resume: the stored config is used, except
            ``epochs``/``max_steps``, which may be raised to train longer).
        out_dir: the run folder (``runs/NAME``); must not hold a run unless ``resume``.
        resume: continue from the newest checkpoint in ``out_dir/checkpoints``.
        progress: called with event dicts (``kind``: ``status``, ``step``, ``loss``,
            ``eval``, ``probe``) from the training thread; exceptions in it are ignored.
        cancel: when set, training stops after the current step, a checkpoint is saved and
            the status becomes ``cancelled``; the ``reason`` of a :class:`CancelEvent` is
            stored as the run's ``note``.
        train_pairs, eval_pairs: ``(english, foreign)`` pairs overriding the data source.

    Returns:
        :class:`RunResult`.

    Raises:
        DistillError: bad config, missing data or model, an existing run without ``resume``.
        CheckpointError: ``resume`` with a damaged newest checkpoint.
    """
    import transformers
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    rank, world = _world()
    is_main = rank == 0
    run_dir = Path(out_dir).expanduser().resolve()
    ckpt_root = run_dir / runs_mod.CHECKPOINT_DIR
    resume_from: Path | None = None
    incomplete: list[Path] = []
    old_record: dict[str, Any] | None = None
    if resume:
        try:
            old_record = runs_mod.read_record(run_dir)
        except runs_mod.RunError as exc:
            raise DistillError(f"cannot resume: {exc}") from None
        stored = DistillConfig.from_dict(old_record.get("config", {}))
        stored.epochs = max(stored.epochs, config.epochs) if config.epochs else stored.epochs
        stored.max_steps = config.max_steps or stored.max_steps
        config = stored
        resume_from = last_checkpoint(run_dir, incomplete)
        if resume_from is None and old_record.get("status") == "finished":
            raise DistillError(f"run {run_dir.name} has finished and has no checkpoint to resume")
    elif is_main and (run_dir / runs_mod.RUN_FILE).exists():
        raise DistillError(
            f"{run_dir} already holds a run; pass resume to continue it or choose another name"
        )
    cfg = config.validate()

    transformers.utils.logging.set_verbosity_error()
    teacher, student = load_models(cfg)
    pairs = train_pairs if train_pairs is not None else load_pairs(cfg, "train", cfg.pairs)
    if not pairs:
        raise DistillError("no training pairs")
    pairs = pairs[: cfg.pairs]
    evaluator = None
    if cfg.evaluate:
        ev = eval_pairs if eval_pairs is not None else load_pairs(cfg, cfg.eval_split, cfg.eval_limit or None)
        ev = ev[: cfg.eval_limit] if cfg.eval_limit else ev
        evaluator = RetrievalEvaluator([x for _, x in ev], [en for en, _ in ev],
                                       name=cfg.eval_split if eval_pairs is None else "eval")
    loss = build_loss(cfg, student, teacher)
    dataset = build_dataset(cfg, pairs, teacher)

    probe = PROBES[cfg.lang]
    record: dict[str, Any] = old_record or {
        "name": run_dir.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": cfg.to_dict(),
        "evals": [],
        "losses": [],
    }
    record.update(
        status="running", error=None, world_size=world, versions=package_versions(),
        data={"train_pairs": len(pairs), "eval_pairs": len(evaluator.src_texts) if evaluator else 0,
              "source": cfg.data if train_pairs is None else "given"},
        seed=cfg.seed, config=cfg.to_dict(),
        # flat copies for readers that do not dig into "config" (ui.common.list_runs)
        lang=cfg.lang, loss=cfg.loss, model_dir=runs_mod.MODEL_DIR, note=None,
    )
    probe_doc = (runs_mod.read_probe(run_dir) or {}) if resume else {}
    probe_doc.update(english=probe[0], foreign=probe[1], epsilon=cfg.epsilon)
    if resume:
        _forget_after(record, probe_doc, resume_from)
    recorder = None
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        note = _set_aside(incomplete, resume_from) if incomplete else None
        recorder = _RunRecorder(run_dir, record, probe_doc, progress)
        recorder.status("running", resumed_from=resume_from.name if resume_from else None,
                        resume_note=note)

    eval_strategy = "no"
    if evaluator is not None:
        eval_strategy = "steps" if cfg.eval_steps > 0 else "epoch"
    args_kw: dict[str, Any] = dict(
        output_dir=str(ckpt_root),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy=eval_strategy,
        use_cpu=True,
        dataloader_num_workers=0,
        report_to="none",
        disable_tqdm=True,
        save_only_model=False,
    )
    if eval_strategy == "steps":
        args_kw["eval_steps"] = cfg.eval_steps
    if world > 1:
        args_kw["ddp_backend"] = "gloo"
    args = SentenceTransformerTrainingArguments(**args_kw)

    track_aer = functools.partial(aer_on_gold, data_dir=cfg.data_dir) if cfg.track_aer else None
    callback = _make_callback_class()(recorder, loss, probe, cfg.probe_every, cancel, track_aer)
    trainer = SentenceTransformerTrainer(
        model=student, args=args, train_dataset=dataset, loss=loss, evaluator=evaluator,
        callbacks=[callback],
    )
    for cb in (PrinterCallback, ProgressCallback):
        with contextlib.suppress(ValueError):
            trainer.remove_callback(cb)
    _slow_save_hook(trainer)

    try:
        if evaluator is not None and resume_from is None and is_main:
            base = evaluator(student)
            metrics = {k: float(v) for k, v in base.items()}
            aer = track_aer(student) if track_aer is not None else None
            if aer is not None:
                metrics["aer_enfr"] = aer
            recorder.eval(0, 0.0, metrics)
        if cancel is not None and cancel.is_set():
            raise _CancelledBeforeStart
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        status = "cancelled" if callback.cancelled else "finished"
        model_dir = None
        if is_main:
            model_dir = runs_mod.save_model_atomic(student, run_dir / runs_mod.MODEL_DIR)
            recorder.status(status, step=trainer.state.global_step,
                            finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            note=getattr(cancel, "reason", None) if callback.cancelled else None)
    except _CancelledBeforeStart:
        if recorder is not None:
            recorder.status("cancelled", step=0, note=getattr(cancel, "reason", None))
        return RunResult(run_dir, "cancelled", None, 0, {}, record)
    except BaseException as exc:
        if recorder is not None:
            msg = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__
            recorder.status("failed", error=f"{type(exc).__name__}: {msg}")
        raise
    last = record.get("evals", [])
    return RunResult(run_dir, status, model_dir, int(trainer.state.global_step),
                     dict(last[-1]["metrics"]) if last else {}, record)


class _CancelledBeforeStart(Exception):
    pass


def _slow_save_hook(trainer) -> None:
    """Apply the :data:`ENV_SLOW_SAVE` test hook: pause after a checkpoint's model files."""
    delay = 0.0
    with contextlib.suppress(ValueError):
        delay = float(os.environ.get(ENV_SLOW_SAVE) or 0)
    if delay <= 0:
        return
    save_model = trainer.save_model

    def slow_save_model(*args, **kwargs):
        save_model(*args, **kwargs)
        time.sleep(delay)

    trainer.save_model = slow_save_model


def evaluate_model(model_id: str | None, lang: str, split: str = "test_2016_flickr",
                   limit: int | None = None, data_dir: str | None = None) -> dict[str, float]:
    """x→en MRR@10 and accuracies of a model (id, folder or run folder) on a Multi30k split."""
    cfg = DistillConfig(lang=lang, data_dir=data_dir)
    pairs = load_pairs(cfg, split, limit)
    from .encoders import ModelLoadError, _load_sentence_transformer, resolve_model

    try:
        model = _load_sentence_transformer(str(runs_mod.resolve_model_dir(resolve_model(model_id))), "cpu")
    except ModelLoadError as exc:
        raise DistillError(str(exc)) from exc
    ev = RetrievalEvaluator([x for _, x in pairs], [en for en, _ in pairs], name="")
    return ev(model)
