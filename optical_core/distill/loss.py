"""OT knowledge distillation (OPTICAL) and the sentence-level MSE baseline.

A frozen *teacher* that knows English encodes the English side of a parallel pair; the
*student* (initialised from the teacher by default) encodes the foreign side. The OPTICAL
loss moves the student's foreign tokens onto the teacher's English tokens along an optimal
transport plan::

    C   = 1 - cos(student(x) tokens, teacher(en) tokens)      (B, n, m), padding masked
    P*  = Sinkhorn(C, a, b, ε)  detached                      (envelope theorem)
    L   = mean over the batch of  Σ_ij P*_ij C_ij

With the ``unbalanced`` solver the marginals are KL-relaxed with strength τ, so a token with
no good partner keeps part of its mass instead of being forced onto some English token.

Special tokens ([CLS], [SEP]) and padding get marginal 0, so they carry no mass. The
baseline is the "make multilingual" MSE loss of Reimers & Gurevych 2020 (sentence-transformers
``MSELoss``): student(en) and student(x) both regress onto teacher(en) sentence embeddings.

Robustness terms (off by default; their formulas below): the student
may read a perturbed foreign sentence x̃ (:mod:`optical_core.distill.augment`), be pulled
onto its own clean tokens (consistency OT), match its clean query's in-batch score
distribution (Self-Teaching), and the plan may also follow the bitext's co-occurrence
statistics (:mod:`optical_core.ot.cooc`).

The terms in full
-----------------

The columns are ``(english, non_english)`` or, when the foreign side is augmented and a
term compares the two readings, ``(english, non_english, clean)``: x̃ = ``non_english``
(perturbed), x = ``clean``. The perturbation happens before the loss, in
:class:`~optical_core.distill.augment.AugmentingCollator`: with probability ``noise_p``
a sentence gets seeded noise of a kind from ``noise_kind`` at a CER drawn from
``U[0, noise_max_cer]``, and its tokens get WordPiece dropout with probability
``subword_dropout`` per greedy match; the English side is never touched. Shapes: ``B``
pairs, ``n`` / ``m`` foreign / English tokens (padded), ``d`` the embedding width; s(·)
the student, t(·) the teacher. The loss is::

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

      S(q)  = cos(q, E) / T                                      (k, B), T = 0.05
      L_st  = KL(softmax S(sg[s(x)]) ‖ softmax S(s(x̃)))         mean over the k

  the clean query's in-batch distribution taught to the noisy query (as
  ``DistilTypoDenseModel`` in ielab/CharacterBERT-DR: the clean side detached). Two
  departures: scores are scaled cosines on both sides (not raw dot products with a
  temperature on the clean side only), and the documents are the teacher's English
  sentences of the batch. For their recipe (KD on the clean query, the typo'd copy only
  in the KL) use ``kd_input="clean"`` with every sentence perturbed.

  Where the KL reads the student (``self_teach_on``; T = ``self_teach_temperature``)::

      pooled  S(q) = cos(q̄, E) / T             q̄ the pooled vector (the form above)
      tokens  p_q  = mean_i softmax(cos(x_i, E) / T)   over the content tokens x_i
              L_st = KL(p_sg[x] ‖ p_x̃)
      scores  S(q) = cos(q̄ − μ, E − Ē) / T     μ the batch's mean student vector (detached)

  What keeps each from the trivial solution (every query the same vector, where any
  KL(clean ‖ noisy) is 0): the anchors, as long as ``w_s · L_st`` stays below what
  collapse costs them. Collapse costs MSE-KD at most 4/d (0.0104 at d = 384; 0.0002 over
  an untrained student on cs), while the pooled KL at T = 0.05 is ~0.5 (see
  :func:`~optical_core.distill.loss_terms.self_teaching_kl`): at weight 1 it wins, at
  ≲ 0.01 it does not. ``tokens`` puts the term on the unit content tokens that OT-KD
  anchors (collapsing them costs ``1 − cos`` per transported token), so it cannot hide in
  [CLS]/[SEP] or in token lengths. ``scores`` centres each document's score on the batch's
  mean, so a document that every query scores high (a component all queries share) stops
  deciding every softmax and the KL asks for the clean query's own ranking.
  tests/test_distill_self_teaching.py trains a tiny student (MSE-KD, d = 32) 60 steps: at
  weight 0.01 with half the batch perturbed every choice spreads its vectors as the
  anchor alone does, at weight 100 they collapse. With *every* sentence perturbed the
  pooled and scores KLs at 0.01 still pull them together (mean cosine 0.95 and 0.99
  against the anchor's 0.72): their gradient grows as 1/T where MSE's shrinks as 1/d, so
  MSE-KD may need weights nearer 0.001 (the weight sweep's grid has it).

After each call ``last_components`` holds the unweighted terms as floats (``ot``,
``ot_en``, ``mse``, ``consistency``, ``self_teach``, and ``noisy_share``, the share of
the batch whose two readings differ) and ``last_ot_stats`` the Sinkhorn diagnostics
of the OT term (mean iterations, share of converged pairs, and for ``"unbalanced"`` the
mean transported mass; the consistency term's under ``consistency_*``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from optical_core.distill.config import (
    KD_INPUTS,
    MARGINALS,
    OT_SOLVERS,
    SELF_TEACH_ON,
    SELF_TEACH_TEMPERATURE,
    TRAINING_OT,
    DistillError,
)
from optical_core.distill.loss_terms import (
    Reading,
    changed_rows,
    mask_of,
    model_inputs,
    plan_stats,
    same_vocab,
    select_rows,
    self_teaching_term,
    teacher_features,
    to_device,
    token_marginal,
)
from optical_core.distill.teacher_cache import TeacherEmbeddings, special_ids, tokenize
from optical_core.ot.config import OTConfig, OTInputError
from optical_core.ot.costs import cost_matrix
from optical_core.ot.plans import batch_plans

#: BibTeX of the paper the loss follows (:attr:`OpticalLoss.citation`).
CITATION = """
@inproceedings{huang2023optical,
    title = "Improving Cross-lingual Information Retrieval on Low-Resource Languages via
             Optimal Transport Distillation",
    author = "Huang, Zhiqi and Yu, Puxuan and Allan, James",
    booktitle = "Proceedings of the Sixteenth ACM International Conference on Web Search
                 and Data Mining (WSDM '23)",
    year = "2023",
    publisher = "Association for Computing Machinery",
    doi = "10.1145/3539597.3570468",
    url = "https://arxiv.org/abs/2301.12566",
}
"""


@dataclass(frozen=True)
class OpticalLossConfig:
    """The OT part of :class:`OpticalLoss` and the weights of its terms.

    Attributes:
        ot: the plan's solver (:class:`~optical_core.ot.solve.OTConfig`): ``sinkhorn``
            (batched, log-stabilised), ``unbalanced`` (KL-relaxed marginals, strength τ;
            the loss stays ``<P*, C>`` with ``P*`` detached: the KL terms do not depend on
            ``C``, so the envelope gradient is still ``P*``) or ``exact`` (POT pair by
            pair: slow, for checks). ε and τ in cosine-cost units (costs span [0, 2]).
        marginals: ``uniform`` over real tokens, or ``norm`` (each token vector's norm).
        align_english: also transport student(en) onto teacher(en).
        ot_weight, mse_weight: weights ``w_ot``, ``w_mse`` of the OT and MSE terms.
        kd_input: with a third column, what the KD terms read: ``noisy`` (x̃) or ``clean``.
        consistency_weight, self_teach_weight: ``w_c``, ``w_s`` (0 = off).
        self_teach_on: where the Self-Teaching KL reads the student: ``pooled``,
            ``tokens`` or ``scores`` (the module docstring's formulas).
        self_teach_temperature: ``T`` of its scores, > 0.
        cooc_weight: share ``λ`` in [0, 1] of the co-occurrence cost in the plan's cost.

    Raises:
        DistillError: an option no term can use.
    """

    ot: OTConfig = TRAINING_OT
    marginals: str = "uniform"
    align_english: bool = False
    ot_weight: float = 1.0
    mse_weight: float = 0.0
    kd_input: str = "noisy"
    consistency_weight: float = 0.0
    self_teach_weight: float = 0.0
    self_teach_on: str = "pooled"
    self_teach_temperature: float = SELF_TEACH_TEMPERATURE
    cooc_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.ot.solver not in OT_SOLVERS:
            raise DistillError(f"unknown OT solver {self.ot.solver!r}; choose one of {OT_SOLVERS}")
        if self.marginals not in MARGINALS:
            raise DistillError(f"unknown marginals {self.marginals!r}; choose one of {MARGINALS}")
        if self.ot_weight < 0 or self.mse_weight < 0 or self.ot_weight + self.mse_weight <= 0:
            raise DistillError("loss weights must be >= 0 and not both 0")
        if self.kd_input not in KD_INPUTS:
            raise DistillError(f"unknown kd_input {self.kd_input!r}; choose one of {KD_INPUTS}")
        if not all(math.isfinite(w) and w >= 0
                   for w in (self.consistency_weight, self.self_teach_weight)):
            raise DistillError("the consistency and self-teaching weights must be finite and >= 0")
        if self.self_teach_on not in SELF_TEACH_ON:
            raise DistillError(f"unknown self_teach_on {self.self_teach_on!r}; choose one of "
                               f"{SELF_TEACH_ON}")
        if not (math.isfinite(self.self_teach_temperature) and self.self_teach_temperature > 0):
            raise DistillError("self_teach_temperature must be > 0 and finite, got "
                               f"{self.self_teach_temperature!r}")
        if not (math.isfinite(self.cooc_weight) and 0 <= self.cooc_weight <= 1):
            raise DistillError("cooc_weight must lie in [0, 1]")


class OpticalLoss(nn.Module):
    """OT knowledge distillation (OPTICAL): the student's foreign tokens are transported
    onto the frozen teacher's English tokens, ``L = mean_b <P*_b, C_b>`` with
    ``C = 1 − cos`` and ``P*`` the detached plan of :attr:`OpticalLossConfig.ot`.

    Args:
        model: the student ``SentenceTransformer``; trained, kept as ``self.model`` (the
            trainer swaps the DDP-wrapped model into exactly that attribute).
        teacher: the teacher ``SentenceTransformer``; frozen (``requires_grad_(False)``,
            ``eval()``, run under ``torch.no_grad()``) and kept as ``self.teacher``.
        config: the plan's solver and the terms' weights (default
            :class:`OpticalLossConfig()`: Sinkhorn at ε 0.01, the OT term only).
        teacher_embeddings: the teacher's cached embeddings of the dataset's English side
            (:func:`optical_core.distill.teacher_cache.teacher_cache`), or ``None`` to run
            the teacher at every step.
        cooc: a :class:`~optical_core.distill.cooc.BitextCooc` of the training bitext;
            needed when ``config.cooc_weight > 0``.

    References:
        - Huang, Yu, Allan, "Improving Cross-lingual Information Retrieval on Low-Resource
          Languages via Optimal Transport Distillation", WSDM 2023,
          https://arxiv.org/abs/2301.12566 (see :attr:`citation`).
        - Reimers & Gurevych, "Making Monolingual Sentence Embeddings Multilingual using
          Knowledge Distillation", EMNLP 2020 (the MSE term).
        - Zhuang & Zuccon, "CharacterBERT and Self-Teaching for Improving the Robustness
          of Dense Retrievers on Queries with Typos", SIGIR 2022 (the self-teaching term).

    Requirements:
        1. Parallel pairs (English, foreign); the English side goes to the frozen teacher.
        2. Student and teacher with token embeddings of the same width.

    Inputs:
        +------------------------------------------+---------------------------------------+
        | Texts                                    | Labels                                |
        +==========================================+=======================================+
        | (english, non_english)                   | none (the teacher runs online)        |
        +------------------------------------------+---------------------------------------+
        | (english, non_english)                   | row index into ``teacher_embeddings`` |
        +------------------------------------------+---------------------------------------+
        | (english, non_english[, clean])          | ``(B, d)`` teacher sentence           |
        |                                          | embeddings (terms without OT only)    |
        +------------------------------------------+---------------------------------------+

        The third column (the clean sentence beside the perturbed ``non_english``) comes
        from :class:`~optical_core.distill.augment.AugmentingCollator`.

    After each call ``last_components`` holds the unweighted terms (``ot``, ``ot_en``,
    ``mse``, ``consistency``, ``self_teach``, ``noisy_share``) and ``last_ot_stats`` the
    plan's diagnostics (:func:`~optical_core.distill.loss_terms.plan_stats`). The module
    docstring gives every term's formula.

    Example:
        ::

            from datasets import Dataset
            from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

            from optical_core.distill.loss import OpticalLoss, OpticalLossConfig
            from optical_core.ot.config import OTConfig

            teacher = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
            student = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")  # a copy
            train = Dataset.from_dict({
                "english": ["A dog runs along the beach."],
                "non_english": ["Ein Hund läuft am Strand entlang."],
            })
            loss = OpticalLoss(student, teacher,
                               OpticalLossConfig(ot=OTConfig("sinkhorn", epsilon=0.01)))
            SentenceTransformerTrainer(model=student, train_dataset=train, loss=loss).train()
    """

    def __init__(self, model, teacher, config: OpticalLossConfig | None = None,
                 teacher_embeddings: TeacherEmbeddings | None = None, cooc=None) -> None:
        super().__init__()
        self.config = config or OpticalLossConfig()
        if self.config.cooc_weight > 0 and cooc is None:
            raise DistillError("cooc_weight > 0 needs the bitext's co-occurrence table (cooc)")
        self.model = model
        # Not an nn.Module attribute: the teacher must not show up in the loss's parameters,
        # state dict or DDP wrapping.
        teacher.eval()
        teacher.requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)
        self.teacher_embeddings = teacher_embeddings
        self.cooc = cooc if self.config.cooc_weight > 0 else None
        self.same_tokenizer = same_vocab(model.tokenizer, teacher.tokenizer)
        self.student_special = special_ids(model.tokenizer)
        self.teacher_special = special_ids(teacher.tokenizer)
        self.mse = None
        if self.config.mse_weight > 0:
            from sentence_transformers.sentence_transformer.losses import MSELoss

            self.mse = MSELoss(model)
        self.last_components: dict[str, float] = {}
        self.last_ot_stats: dict[str, float] = {}

    @property
    def citation(self) -> str:
        """BibTeX of OPTICAL (Huang, Yu & Allan, WSDM 2023)."""
        return CITATION

    # -- pieces ----------------------------------------------------------------

    def ot_cost(
        self, x_tokens: torch.Tensor, x_mask: torch.Tensor, y_tokens: torch.Tensor,
        y_mask: torch.Tensor, cooc: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-pair transport cost ``<P*, C>`` (``(B,)``), the plans and the costs.

        ``x`` are the (differentiable) student tokens ``(B, n, d)``, ``y`` the teacher
        tokens ``(B, m, d)``, the masks ``(B, n)`` / ``(B, m)``. ``cooc`` (``(B, n, m)`` in
        [0, 2], no gradient) is mixed into the plan's cost with weight ``cooc_weight``; the
        returned cost and ``<P*, C>`` stay the embedding cost's.
        """
        # In float32 even under bf16 autocast: ε = 0.01 needs the cost's digits.
        with torch.autocast(device_type=x_tokens.device.type, enabled=False):
            cost = cost_matrix(x_tokens.float(), y_tokens.float(), "cosine")  # (B, n, m)
        a = token_marginal(x_mask, x_tokens, self.config.marginals)
        b = token_marginal(y_mask, y_tokens, self.config.marginals)
        with torch.no_grad():
            plan_cost = cost.detach()
            if cooc is not None:
                lam = self.config.cooc_weight
                plan_cost = (1 - lam) * plan_cost + lam * cooc.to(plan_cost)
            try:
                res = batch_plans(plan_cost, a, b, self.config.ot)
            except OTInputError as exc:
                raise DistillError(f"the OT plan could not be computed: {exc}") from exc
        self.last_ot_stats = plan_stats(res, self.config.ot.solver)
        plan = res.plan.detach()
        return (plan * cost).sum(dim=(1, 2)), plan, cost

    def teacher_side(self, en_features: dict[str, torch.Tensor], labels
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """The teacher's content tokens ``(B, m, d)``, their mask ``(B, m)`` and its
        sentence embeddings ``(B, d)`` of the batch's English side: from the cache when
        there is one, else from a no-grad forward pass. MSE-KD's dataset gives the sentence
        embeddings as ``(B, d)`` float labels; then there are no tokens (``None``)."""
        device = en_features["input_ids"].device
        if labels is not None and labels.dim() == 2 and labels.dtype.is_floating_point:
            if self.config.ot_weight > 0 or self.config.align_english:
                raise DistillError("the OT terms need the teacher's tokens, not only its "
                                   "sentence embeddings (MSE-KD's labels)")
            return None, None, labels.detach().to(device, torch.float32)
        if self.teacher_embeddings is not None:
            if labels is None or labels.dim() != 1 or labels.dtype.is_floating_point:
                raise DistillError("with a teacher cache the dataset's label column must hold "
                                   "each row's index into the cache")
            return self.teacher_embeddings.batch(labels, device=device)
        if next(self.teacher.parameters()).device != device:  # the trainer moves the student
            self.teacher.to(device)
        t_feats = teacher_features(self.model, self.teacher, en_features, self.same_tokenizer)
        with torch.no_grad():
            t_out = self.teacher(dict(t_feats))
        return (t_out["token_embeddings"].detach(), mask_of(t_feats, self.teacher_special),
                t_out["sentence_embedding"].detach())

    def cooc_cost(self, x_features: dict[str, torch.Tensor], en_features: dict[str, torch.Tensor],
                  labels, t_tok: torch.Tensor) -> torch.Tensor:
        """``(B, n, m)`` co-occurrence cost between the student's foreign token ids and the
        teacher's English ones, laid out as the OT term's cost."""
        if self.teacher_embeddings is not None:
            en_ids = self.cooc.english_ids(labels)  # the cache's row layout
        else:
            en_ids = teacher_features(self.model, self.teacher, en_features,
                                      self.same_tokenizer)["input_ids"]
        if en_ids.shape[:2] != t_tok.shape[:2]:
            raise DistillError("the co-occurrence table's English tokens do not line up with "
                               "the teacher's; rebuild it with the teacher's tokenizer")
        return self.cooc.table.cost_batch(x_features["input_ids"], en_ids).to(t_tok.device)

    # -- forward ---------------------------------------------------------------

    def forward(self, sentence_features: Sequence[dict[str, torch.Tensor]],
                labels=None) -> torch.Tensor:
        """``w_ot · OT + w_mse · MSE + w_c · L_cons + w_s · L_st`` of one batch (a scalar)."""
        cfg = self.config
        feats = list(sentence_features)
        if len(feats) not in (2, 3):
            raise DistillError(
                "OpticalLoss expects the text columns (english, non_english) or (english, "
                f"non_english, clean), got {len(feats)}"
            )
        en_f, x_f = feats[0], feats[1]
        clean_f = feats[2] if len(feats) == 3 else None
        if clean_f is None and (cfg.consistency_weight > 0 or cfg.self_teach_weight > 0):
            raise DistillError("the consistency and self-teaching terms need the clean foreign "
                               "sentence as a third column (the augmenting collator adds it)")
        kd_is_clean = clean_f is not None and cfg.kd_input == "clean"
        if kd_is_clean:
            x_f, clean_f = clean_f, x_f  # x_f: what the KD terms read
        t_tok, t_mask, t_sent = self.teacher_side(en_f, labels)
        s_x = self.model(model_inputs(x_f))
        need_en = cfg.align_english or self.mse is not None
        s_en = self.model(model_inputs(en_f)) if need_en else None
        total = torch.zeros((), device=s_x["token_embeddings"].device)
        comps: dict[str, float] = {}
        if cfg.ot_weight > 0:
            cooc = self.cooc_cost(x_f, en_f, labels, t_tok) if self.cooc is not None else None
            x_mask = mask_of(x_f, self.student_special)
            ot_loss = self.ot_cost(s_x["token_embeddings"], x_mask, t_tok, t_mask, cooc)[0].mean()
            comps["ot"] = float(ot_loss.detach())
            if cfg.align_english:
                if not self.same_tokenizer:
                    raise DistillError("align_english needs the student and teacher to share "
                                       "a tokenizer")
                en_mask = mask_of(en_f, self.student_special)
                per_en = self.ot_cost(s_en["token_embeddings"], en_mask, t_tok, t_mask)[0].mean()
                comps["ot_en"] = float(per_en.detach())
                ot_loss = ot_loss + per_en
            total = total + cfg.ot_weight * ot_loss
        if self.mse is not None:
            mse = self.mse.compute_loss_from_embeddings(
                [s_en["sentence_embedding"], s_x["sentence_embedding"]], [t_sent, t_sent])
            comps["mse"] = float(mse.detach())
            total = total + cfg.mse_weight * mse
        if clean_f is not None:
            total = total + self.robust_terms(x_f, s_x, clean_f, kd_is_clean, t_sent, comps)
        self.last_components = comps
        return total

    def robust_terms(self, kd_f: dict[str, torch.Tensor], s_kd: dict[str, torch.Tensor],
                     other_f: dict[str, torch.Tensor], kd_is_clean: bool, t_sent: torch.Tensor,
                     comps: dict[str, float]) -> torch.Tensor:
        """``w_c · L_cons + w_s · L_st`` over the rows whose two readings differ. ``kd_f`` /
        ``s_kd``: the KD input and the student's output on it (with gradient); ``other_f``:
        the other reading, run here (with gradient when it is the noisy one, without when it
        is the clean target)."""
        cfg = self.config
        changed = changed_rows(kd_f, other_f)
        comps["noisy_share"] = float(changed.float().mean())
        idx = changed.nonzero().squeeze(1)
        total = torch.zeros((), device=s_kd["token_embeddings"].device)
        if idx.numel() == 0:
            comps.update({k: 0.0 for k, w in (("consistency", cfg.consistency_weight),
                                              ("self_teach", cfg.self_teach_weight)) if w > 0})
            return total
        kd_rows = select_rows(kd_f, idx)
        width = kd_rows["input_ids"].shape[1]
        kd_out = {"token_embeddings": s_kd["token_embeddings"][idx][:, :width],
                  "sentence_embedding": s_kd["sentence_embedding"][idx]}
        other_rows = select_rows(other_f, idx)
        if kd_is_clean:  # the noisy reading learns, the clean one (the KD input) is the target
            noisy_f, noisy = other_rows, self.model(model_inputs(other_rows))
            clean_f, clean = kd_rows, kd_out
        else:
            noisy_f, noisy, clean_f = kd_rows, kd_out, other_rows
            with torch.no_grad():
                clean = self.model(model_inputs(other_rows))
        if cfg.consistency_weight > 0:
            main_stats = dict(self.last_ot_stats)
            cons = self.ot_cost(
                noisy["token_embeddings"], mask_of(noisy_f, self.student_special),
                clean["token_embeddings"].detach(), mask_of(clean_f, self.student_special),
            )[0].mean()
            self.last_ot_stats = {**main_stats, **{f"consistency_{k}": v
                                                   for k, v in self.last_ot_stats.items()}}
            comps["consistency"] = float(cons.detach())
            total = total + cfg.consistency_weight * cons
        if cfg.self_teach_weight > 0:
            sp = self.student_special
            st = self_teaching_term(cfg.self_teach_on, cfg.self_teach_temperature, t_sent,
                                    s_kd["sentence_embedding"], Reading.target(clean, clean_f, sp),
                                    Reading.of(noisy, noisy_f, sp))
            comps["self_teach"] = float(st.detach())
            total = total + cfg.self_teach_weight * st
        return total

    # -- probe -----------------------------------------------------------------

    @torch.no_grad()
    def probe(self, src_text: str, en_text: str) -> dict[str, Any]:
        """The plan between student(``src_text``) and teacher(``en_text``) tokens, as the loss
        sees it (special tokens dropped), with the student in eval mode: source and English
        tokens, the ``(n, m)`` plan and cost as nested lists, and ``<P*, C>``."""
        student = getattr(self.model, "module", self.model)  # unwrap DDP
        was_training = student.training
        student.eval()
        try:
            dev = next(student.parameters()).device
            sf = to_device(tokenize(student, [src_text]), dev)
            tf = to_device(tokenize(self.teacher, [en_text]), dev)
            sm, tm = mask_of(sf, self.student_special), mask_of(tf, self.teacher_special)
            cooc = (self.cooc.table.cost_batch(sf["input_ids"], tf["input_ids"])
                    if self.cooc is not None else None)
            per_pair, plan, cost = self.ot_cost(
                student(model_inputs(sf))["token_embeddings"], sm,
                self.teacher(model_inputs(tf))["token_embeddings"], tm, cooc)
        finally:
            student.train(was_training)
        rows, cols = sm[0], tm[0]
        tokens = student.tokenizer.convert_ids_to_tokens
        return {
            "src_tokens": tokens(sf["input_ids"][0][rows].tolist()),
            "en_tokens": self.teacher.tokenizer.convert_ids_to_tokens(
                tf["input_ids"][0][cols].tolist()),
            "plan": np.round(plan[0][rows][:, cols].float().cpu().numpy(), 5).tolist(),
            "cost": np.round(cost[0][rows][:, cols].float().cpu().numpy(), 4).tolist(),
            "ot_cost": float(per_pair[0]),
        }
