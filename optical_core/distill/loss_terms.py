"""The pieces of :class:`~optical_core.distill.loss.OpticalLoss` that are plain functions:
feature plumbing, token marginals, the Self-Teaching KL and the rows a perturbation changed.
"""

from __future__ import annotations

import torch

from optical_core.distill.teacher_cache import content_mask, tokenize
from optical_core.ot.batch import BatchOTResult

#: Scale of the Self-Teaching scores, ``1 / temperature`` on cosine similarities (0.05, the
#: temperature of sentence-transformers' in-batch ranking loss).
SELF_TEACH_SCALE = 20.0
#: The tokenizer outputs a sentence-transformers module reads.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_inputs(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A fresh dict with only the tokenizer outputs (sentence-transformers modules add keys
    to the dict they are given, so the student and the teacher must not share one)."""
    return {k: v for k, v in features.items() if k in MODEL_INPUTS}


def teacher_features(student, teacher, en_features: dict[str, torch.Tensor],
                     same_tokenizer: bool) -> dict[str, torch.Tensor]:
    """The teacher's tokenization of a batch's English side: the student's features when
    the two share a vocabulary, else the decoded text tokenized again by the teacher."""
    if same_tokenizer:
        return model_inputs(en_features)
    student = getattr(student, "module", student)  # unwrap DDP
    texts = student.tokenizer.batch_decode(en_features["input_ids"], skip_special_tokens=True)
    return to_device(tokenize(teacher, texts), en_features["input_ids"].device)


def mask_of(features: dict[str, torch.Tensor], special: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool: the tokens of a tokenized batch that carry mass (see
    :func:`~optical_core.distill.teacher_cache.content_mask`)."""
    return content_mask(features["input_ids"], features["attention_mask"], special)


def same_vocab(t1, t2) -> bool:
    """Whether two tokenizers map text to the same ids (then the teacher can read the
    student's English features as they are)."""
    if t1 is t2:
        return True
    try:
        return type(t1) is type(t2) and t1.get_vocab() == t2.get_vocab() and (
            getattr(t1, "do_lower_case", None) == getattr(t2, "do_lower_case", None)
        )
    except (AttributeError, NotImplementedError, TypeError):  # pragma: no cover - exotic ones
        return False


def token_marginal(mask: torch.Tensor, tokens: torch.Tensor, marginals: str) -> torch.Tensor:
    """``(B, L)`` marginal of a padded batch: ``uniform`` over the tokens of ``mask``, or
    ``norm`` (each token's vector norm, detached); 0 on the others, each row summing to 1.

    Args:
        mask: ``(B, L)`` bool, the tokens that carry mass.
        tokens: ``(B, L, d)`` their vectors.
        marginals: ``uniform`` or ``norm``.
    """
    w = mask.to(tokens.dtype)
    if marginals == "norm":
        w = w * tokens.detach().norm(dim=-1)
    return w / w.sum(1, keepdim=True).clamp_min(1e-12)


def plan_stats(res: BatchOTResult, solver: str) -> dict[str, float]:
    """What ``last_ot_stats`` reports of a batch's plans: mean iterations, share of
    converged pairs, worst marginal error and, for ``unbalanced``, the mean mass moved."""
    stats = {
        "iterations": float(res.iterations.float().mean()),
        "converged": float(res.converged.float().mean()),
        "marginal_error": float(res.marginal_error.float().max()),
    }
    if solver == "unbalanced":
        stats["mass"] = float(res.plan.sum(dim=(1, 2)).float().mean())
    return stats


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


def changed_rows(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B,)`` bool: the rows whose real token ids differ between two tokenized batches."""
    ia = a["input_ids"].masked_fill(~a["attention_mask"].bool(), -1)
    ib = b["input_ids"].to(ia.device).masked_fill(~b["attention_mask"].to(ia.device).bool(), -1)
    width = max(ia.shape[1], ib.shape[1])
    ia = torch.nn.functional.pad(ia, (0, width - ia.shape[1]), value=-1)
    ib = torch.nn.functional.pad(ib, (0, width - ib.shape[1]), value=-1)
    return (ia != ib).any(dim=1)


def select_rows(features: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """The rows ``idx`` of a tokenized batch, cut to their longest real length."""
    width = int(features["attention_mask"][idx].sum(1).max()) if idx.numel() else 0
    return {k: v[idx][:, :width] for k, v in model_inputs(features).items()}


def to_device(features: dict, device: torch.device) -> dict[str, torch.Tensor]:
    """The tensors of a tokenizer's output on ``device`` (other entries dropped)."""
    return {k: v.to(device) for k, v in features.items() if isinstance(v, torch.Tensor)}
