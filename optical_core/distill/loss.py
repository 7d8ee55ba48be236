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

Robustness terms (off by default; :class:`OpticalLoss` documents the formulas): the student
may read a perturbed foreign sentence x̃ (:mod:`optical_core.distill.augment`), be pulled
onto its own clean tokens (consistency OT), match its clean query's in-batch score
distribution (Self-Teaching), and the plan may also follow the bitext's co-occurrence
statistics (:mod:`optical_core.ot.cooc`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from optical_core.distill.config import KD_INPUTS, MARGINALS, OT_SOLVERS, DistillError
from optical_core.distill.teacher_cache import (
    TeacherEmbeddings,
    content_mask,
    special_ids,
    tokenize,
)
from optical_core.ot.batch import sinkhorn_batch
from optical_core.ot.costs import OTInputError
from optical_core.ot.unbalanced_batch import sinkhorn_unbalanced_batch

#: Scale of the Self-Teaching scores, ``1 / temperature`` on cosine similarities (0.05, the
#: temperature of sentence-transformers' in-batch ranking loss).
SELF_TEACH_SCALE = 20.0
# =========================================================================== loss


def _model_inputs(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fresh dict with only the tokenizer outputs (sentence-transformers modules add keys
    to the dict they are given, so the student and the teacher must not share one)."""
    return {k: v for k, v in features.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")}


class OpticalLoss(nn.Module):
    """OT distillation loss ``mean_b <P*_b, C_b>`` between student(x) and teacher(en) tokens.

    A sentence-transformers loss: ``forward(sentence_features, labels)`` with the columns
    ``(english, non_english)`` in that order (and ``clean`` third, see below). Without
    ``teacher_embeddings`` the teacher runs online and the labels are ignored; with them,
    the labels are the rows' indices into the cache and the teacher is not run. ``(B, d)``
    float labels (MSE-KD's dataset) are the teacher's sentence embeddings; they serve the
    terms without OT (MSE-KD carrying a consistency or self-teaching term).

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
            :func:`~optical_core.ot.unbalanced_batch.sinkhorn_unbalanced_batch`) or ``"exact"`` (POT's
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
        teacher_embeddings: the teacher's cached embeddings of the dataset's English side
            (:func:`optical_core.distill.teacher_cache.teacher_cache`), or ``None``.
        kd_input: with a third column (the clean sentence), what the KD terms (OT, MSE)
            read: ``"noisy"`` (the perturbed x̃, noisy-student KD) or ``"clean"`` (x; x̃
            then enters the consistency and self-teaching terms only).
        consistency_weight: weight ``w_c`` of the consistency OT term (0 = off).
        self_teach_weight: weight ``w_s`` of the Self-Teaching term (0 = off).
        cooc: a :class:`~optical_core.distill.cooc.BitextCooc` of the training bitext, or
            ``None``; cooc_weight: its share ``λ`` in ``[0, 1]`` of the plan's cost.

    The columns are ``(english, non_english)`` or, when the foreign side is augmented and a
    term compares the two readings, ``(english, non_english, clean)``: x̃ = ``non_english``
    (perturbed), x = ``clean``. The perturbation happens before the loss, in
    :class:`~optical_core.distill.augment.AugmentingCollator`: with probability ``noise_p``
    a sentence gets seeded noise of a kind from ``noise_kind`` at a CER drawn from
    ``U[0, noise_max_cer]``, and its tokens get WordPiece dropout with probability
    ``subword_dropout`` per greedy match; the English side is never touched. Shapes: ``B`` pairs, ``n`` / ``m`` foreign / English tokens
    (padded), ``d`` the embedding width; s(·) the student, t(·) the teacher. The loss is::

        L = w_ot · mean_b <P*_b, C_b> + w_mse · MSE + w_c · L_cons + w_s · L_st

    * **OT term**, on the KD input z (x̃, or x with ``kd_input="clean"``)::

          C_emb = 1 − cos(s(z) tokens, t(en) tokens)                 (B, n, m)
          C     = (1 − λ) C_emb + λ C_cooc                           (B, n, m), λ = cooc_weight
          P*    = Sinkhorn(C, a, b, ε)  detached                     (B, n, m)
          term  = mean_b <P*_b, C_emb_b>

      ``C_cooc`` ∈ [0, 2] is the co-occurrence cost of the token ids
      (:meth:`~optical_core.ot.cooc.CoocTable.cost_batch`): it has no gradient and only
      moves the plan. The transported cost is measured with ``C_emb``, so the gradient
      keeps its scale for every λ and λ = 0 is exactly the plain loss.
    * **MSE term** (sentence level): the mean of ``MSE(s(en), t(en))`` and ``MSE(s(z), t(en))``.
    * **Consistency OT**, over the ``k`` sentences whose x̃ differs from x (an unperturbed
      sentence would only compare two dropout masks)::

          C'     = 1 − cos(s(x̃) tokens, sg[s(x) tokens])            (k, n', n)
          L_cons = mean over the k of <P'*, C'>,  P' = Sinkhorn(C', ...) detached

      ``sg`` stops the gradient: the clean reading is the target.
    * **Self-Teaching** (Zhuang & Zuccon, SIGIR 2022), over the same ``k`` sentences,
      scored against the teacher's English sentence embeddings of the batch ``E`` (B, d)::

          S(q)  = SELF_TEACH_SCALE · cos(q, E)                       (k, B)
          L_st  = KL(softmax S(sg[s(x)]) ‖ softmax S(s(x̃)))         mean over the k

      the clean query's in-batch distribution taught to the noisy query (as
      ``DistilTypoDenseModel`` in ielab/CharacterBERT-DR: the clean side detached). Two
      departures: scores are scaled cosines on both sides (not raw dot products with a
      temperature on the clean side only), and the documents are the teacher's English
      sentences of the batch. For their recipe (KD on the clean query, the typo'd copy only
      in the KL) use ``kd_input="clean"`` with every sentence perturbed.

    After each call ``last_components`` holds the unweighted terms as floats (``ot``,
    ``ot_en``, ``mse``, ``consistency``, ``self_teach``, and ``noisy_share``, the share of
    the batch whose two readings differ) and ``last_ot_stats`` the Sinkhorn diagnostics
    of the OT term (mean iterations, share of converged pairs, and for ``"unbalanced"`` the
    mean transported mass; the consistency term's under ``consistency_*``).
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
        teacher_embeddings: TeacherEmbeddings | None = None,
        kd_input: str = "noisy",
        consistency_weight: float = 0.0,
        self_teach_weight: float = 0.0,
        cooc=None,
        cooc_weight: float = 0.0,
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
        if kd_input not in KD_INPUTS:
            raise DistillError(f"unknown kd_input {kd_input!r}; choose one of {KD_INPUTS}")
        if not all(math.isfinite(w) and w >= 0 for w in (consistency_weight, self_teach_weight)):
            raise DistillError("the consistency and self-teaching weights must be finite and >= 0")
        if not (math.isfinite(cooc_weight) and 0 <= cooc_weight <= 1):
            raise DistillError("cooc_weight must lie in [0, 1]")
        if cooc_weight > 0 and cooc is None:
            raise DistillError("cooc_weight > 0 needs the bitext's co-occurrence table (cooc)")
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
        self._student_special = special_ids(model.tokenizer)
        self._teacher_special = special_ids(teacher.tokenizer)
        self.teacher_embeddings = teacher_embeddings
        self.kd_input = kd_input
        self.consistency_weight = float(consistency_weight)
        self.self_teach_weight = float(self_teach_weight)
        self.cooc = cooc if cooc_weight > 0 else None
        self.cooc_weight = float(cooc_weight)
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
        feats = tokenize(self.teacher, texts)
        dev = en_features["input_ids"].device
        return {k: v.to(dev) for k, v in feats.items() if isinstance(v, torch.Tensor)}

    @staticmethod
    def _mask(features: dict[str, torch.Tensor], special: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` bool: the tokens that carry mass (see
        :func:`~optical_core.distill.teacher_cache.content_mask`)."""
        return content_mask(features["input_ids"], features["attention_mask"], special)

    def _marginal(self, mask: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        w = mask.to(tokens.dtype)
        if self.marginals == "norm":
            w = w * tokens.detach().norm(dim=-1)
        return w / w.sum(1, keepdim=True).clamp_min(1e-12)

    def ot_cost(
        self, x_tokens: torch.Tensor, x_mask: torch.Tensor, y_tokens: torch.Tensor, y_mask: torch.Tensor,
        cooc: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pair transport cost ``<P*, C>`` (``(B,)``), the plans and the costs.

        ``x`` are the (differentiable) student tokens, ``y`` the teacher tokens. ``cooc``
        (``(B, n, m)`` in [0, 2], no gradient) is mixed into the plan's cost with weight
        ``cooc_weight``; the returned cost and ``<P*, C>`` stay the embedding cost's.
        """
        from optical_core.ot.costs import cost_matrix

        # In float32 even under bf16 autocast: ε = 0.01 needs the cost's digits.
        with torch.autocast(device_type=x_tokens.device.type, enabled=False):
            cost = cost_matrix(x_tokens.float(), y_tokens.float(), "cosine")  # (B, n, m)
        a = self._marginal(x_mask, x_tokens)
        b = self._marginal(y_mask, y_tokens)
        with torch.no_grad():
            plan_cost = cost.detach()
            if cooc is not None:
                lam = self.cooc_weight
                plan_cost = (1 - lam) * plan_cost + lam * cooc.to(plan_cost)
            plan = self._plan(plan_cost, a, b)
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

    def _teacher_side(self, en_features: dict[str, torch.Tensor], labels
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """The teacher's content tokens ``(B, m, d)``, their mask ``(B, m)`` and its
        sentence embeddings ``(B, d)`` of the batch's English side: from the cache when
        there is one, else from a no-grad forward pass. MSE-KD's dataset gives the sentence
        embeddings as ``(B, d)`` float labels; then there are no tokens (``None``)."""
        device = en_features["input_ids"].device
        if labels is not None and labels.dim() == 2 and labels.dtype.is_floating_point:
            if self.ot_weight > 0 or self.align_english:
                raise DistillError("the OT terms need the teacher's tokens, not only its "
                                   "sentence embeddings (MSE-KD's labels)")
            return None, None, labels.detach().to(device, torch.float32)
        if self.teacher_embeddings is not None:
            if labels is None or labels.dim() != 1 or labels.dtype.is_floating_point:
                raise DistillError("with a teacher cache the dataset's label column must hold "
                                   "each row's index into the cache")
            return self.teacher_embeddings.batch(labels, device=device)
        if next(self.teacher.parameters()).device != device:  # the trainer moves only the student
            self.teacher.to(device)
        t_feats = self._teacher_features(en_features)
        with torch.no_grad():
            t_out = self.teacher(dict(t_feats))
        return (t_out["token_embeddings"].detach(), self._mask(t_feats, self._teacher_special),
                t_out["sentence_embedding"].detach())

    def _cooc_cost(self, x_features: dict[str, torch.Tensor], en_features: dict[str, torch.Tensor],
                   labels, t_tok: torch.Tensor) -> torch.Tensor:
        """``(B, n, m)`` co-occurrence cost between the student's foreign token ids and the
        teacher's English ones, laid out as the OT term's cost."""
        if self.teacher_embeddings is not None:
            en_ids = self.cooc.english_ids(labels)  # the cache's row layout
        else:
            en_ids = self._teacher_features(en_features)["input_ids"]
        if en_ids.shape[:2] != t_tok.shape[:2]:
            raise DistillError("the co-occurrence table's English tokens do not line up with "
                               "the teacher's; rebuild it with the teacher's tokenizer")
        return self.cooc.table.cost_batch(x_features["input_ids"], en_ids).to(t_tok.device)

    def forward(self, sentence_features: Sequence[dict[str, torch.Tensor]], labels=None) -> torch.Tensor:
        feats = list(sentence_features)
        if len(feats) not in (2, 3):
            raise DistillError(
                "OpticalLoss expects the text columns (english, non_english) or (english, "
                f"non_english, clean), got {len(feats)}"
            )
        en_f, x_f = feats[0], feats[1]
        clean_f = feats[2] if len(feats) == 3 else None
        if clean_f is None and (self.consistency_weight > 0 or self.self_teach_weight > 0):
            raise DistillError("the consistency and self-teaching terms need the clean foreign "
                               "sentence as a third column (the augmenting collator adds it)")
        if clean_f is not None and self.kd_input == "clean":
            x_f, clean_f, kd_is_clean = clean_f, x_f, True  # x_f: what the KD terms read
        else:
            kd_is_clean = False
        t_tok, t_mask, t_sent = self._teacher_side(en_f, labels)
        s_x = self.model(_model_inputs(x_f))
        x_mask = self._mask(x_f, self._student_special)
        need_en = self.align_english or self._mse is not None
        s_en = self.model(_model_inputs(en_f)) if need_en else None

        total = torch.zeros((), device=s_x["token_embeddings"].device)
        comps: dict[str, float] = {}
        if self.ot_weight > 0:
            cooc = self._cooc_cost(x_f, en_f, labels, t_tok) if self.cooc is not None else None
            per_pair, _, _ = self.ot_cost(s_x["token_embeddings"], x_mask, t_tok, t_mask, cooc)
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
            mse = self._mse.compute_loss_from_embeddings(
                [s_en["sentence_embedding"], s_x["sentence_embedding"]], [t_sent, t_sent]
            )
            comps["mse"] = float(mse.detach())
            total = total + self.mse_weight * mse
        if clean_f is not None:
            total = total + self._robust_terms(x_f, s_x, clean_f, kd_is_clean, t_sent, comps)
        self.last_components = comps
        return total

    def _robust_terms(self, kd_f: dict[str, torch.Tensor], s_kd: dict[str, torch.Tensor],
                      other_f: dict[str, torch.Tensor], kd_is_clean: bool, t_sent: torch.Tensor,
                      comps: dict[str, float]) -> torch.Tensor:
        """``w_c · L_cons + w_s · L_st`` over the rows whose two readings differ (see the
        class docstring). ``kd_f`` / ``s_kd``: the KD input and the student's output on it
        (with gradient); ``other_f``: the other reading, run here (with gradient when it is
        the noisy one, without when it is the clean target)."""
        changed = _changed_rows(kd_f, other_f)
        comps["noisy_share"] = float(changed.float().mean())
        idx = changed.nonzero().squeeze(1)
        total = torch.zeros((), device=s_kd["token_embeddings"].device)
        if idx.numel() == 0:
            if self.consistency_weight > 0:
                comps["consistency"] = 0.0
            if self.self_teach_weight > 0:
                comps["self_teach"] = 0.0
            return total
        kd_rows = _rows(kd_f, idx)
        kd_tok = s_kd["token_embeddings"][idx][:, :kd_rows["input_ids"].shape[1]]
        kd_out = {"token_embeddings": kd_tok, "sentence_embedding": s_kd["sentence_embedding"][idx]}
        other_rows = _rows(other_f, idx)
        if kd_is_clean:  # the noisy reading learns, the clean one (the KD input) is the target
            noisy_f, noisy = other_rows, self.model(_model_inputs(other_rows))
            clean_f, clean = kd_rows, kd_out
        else:
            noisy_f, noisy = kd_rows, kd_out
            clean_f = other_rows
            with torch.no_grad():
                clean = self.model(_model_inputs(other_rows))
        if self.consistency_weight > 0:
            main_stats = dict(self.last_ot_stats)
            per_pair, _, _ = self.ot_cost(
                noisy["token_embeddings"], self._mask(noisy_f, self._student_special),
                clean["token_embeddings"].detach(), self._mask(clean_f, self._student_special))
            cons = per_pair.mean()
            self.last_ot_stats = {**main_stats,
                                  **{f"consistency_{k}": v for k, v in self.last_ot_stats.items()}}
            comps["consistency"] = float(cons.detach())
            total = total + self.consistency_weight * cons
        if self.self_teach_weight > 0:
            st = self_teaching_kl(clean["sentence_embedding"].detach(),
                                  noisy["sentence_embedding"], t_sent)
            comps["self_teach"] = float(st.detach())
            total = total + self.self_teach_weight * st
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
            sf = tokenize(student, [src_text])
            tf = tokenize(self.teacher, [en_text])
            dev = next(student.parameters()).device
            sf = {k: v.to(dev) for k, v in sf.items() if isinstance(v, torch.Tensor)}
            tf = {k: v.to(dev) for k, v in tf.items() if isinstance(v, torch.Tensor)}
            s_tok = student(_model_inputs(sf))["token_embeddings"]
            t_tok = self.teacher(_model_inputs(tf))["token_embeddings"]
            sm = self._mask(sf, self._student_special)
            tm = self._mask(tf, self._teacher_special)
            cooc = (self.cooc.table.cost_batch(sf["input_ids"], tf["input_ids"])
                    if self.cooc is not None else None)
            per_pair, plan, cost = self.ot_cost(s_tok, sm, t_tok, tm, cooc)
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



def _same_vocab(t1, t2) -> bool:
    if t1 is t2:
        return True
    try:
        return type(t1) is type(t2) and t1.get_vocab() == t2.get_vocab() and (
            getattr(t1, "do_lower_case", None) == getattr(t2, "do_lower_case", None)
        )
    except Exception:  # pragma: no cover - exotic tokenizers
        return False


def self_teaching_kl(clean: torch.Tensor, noisy: torch.Tensor, documents: torch.Tensor,
                     scale: float = SELF_TEACH_SCALE) -> torch.Tensor:
    """Self-Teaching's KL term: ``KL(softmax S(clean) ‖ softmax S(noisy))``, mean over rows.

    Args:
        clean: ``(k, d)`` the clean queries' embeddings (the target; detach it).
        noisy: ``(k, d)`` the noisy queries' embeddings.
        documents: ``(B, d)`` the in-batch documents (the teacher's English sentences).
        scale: ``S(q) = scale · cos(q, documents)``.

    Returns:
        A scalar in float32 (0 when the two distributions agree).
    """
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        docs = torch.nn.functional.normalize(documents.float(), dim=-1)
        s_clean = scale * torch.nn.functional.normalize(clean.float(), dim=-1) @ docs.T
        s_noisy = scale * torch.nn.functional.normalize(noisy.float(), dim=-1) @ docs.T
        return torch.nn.functional.kl_div(torch.log_softmax(s_noisy, dim=1),
                                          torch.log_softmax(s_clean, dim=1),
                                          reduction="batchmean", log_target=True)


def _changed_rows(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B,)`` bool: the rows whose real token ids differ between two tokenized batches."""
    ia = a["input_ids"].masked_fill(~a["attention_mask"].bool(), -1)
    ib = b["input_ids"].to(ia.device).masked_fill(~b["attention_mask"].to(ia.device).bool(), -1)
    width = max(ia.shape[1], ib.shape[1])
    ia = torch.nn.functional.pad(ia, (0, width - ia.shape[1]), value=-1)
    ib = torch.nn.functional.pad(ib, (0, width - ib.shape[1]), value=-1)
    return (ia != ib).any(dim=1)


def _rows(features: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows ``idx`` of a tokenized batch, cut to their longest real length."""
    width = int(features["attention_mask"][idx].sum(1).max()) if idx.numel() else 0
    return {k: v[idx][:, :width] for k, v in _model_inputs(features).items()}
