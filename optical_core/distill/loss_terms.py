"""The pieces of :class:`~optical_core.distill.loss.OpticalLoss` that are plain functions:
feature plumbing, token marginals, the Self-Teaching KLs and the rows a perturbation changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from optical_core.distill.config import SELF_TEACH_TEMPERATURE
from optical_core.distill.teacher_cache import content_mask, tokenize
from optical_core.ot.batch import BatchOTResult

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


def score_kl(s_clean: torch.Tensor, s_noisy: torch.Tensor) -> torch.Tensor:
    """``KL(softmax s_clean ‖ softmax s_noisy)`` of ``(k, B)`` logits, mean over the ``k``
    rows, in float32: 0 when the rows agree up to a shift per row, ≥ 0 always."""
    return torch.nn.functional.kl_div(torch.log_softmax(s_noisy.float(), dim=1),
                                      torch.log_softmax(s_clean.float(), dim=1),
                                      reduction="batchmean", log_target=True)


def self_teaching_kl(clean: torch.Tensor, noisy: torch.Tensor, documents: torch.Tensor,
                     temperature: float = SELF_TEACH_TEMPERATURE) -> torch.Tensor:
    """Self-Teaching's KL on the pooled vectors (``self_teach_on="pooled"``):
    ``KL(softmax S(clean) ‖ softmax S(noisy))``, mean over rows, with
    ``S(q) = cos(q, documents) / temperature``.

    The scale problem (why the weight must go far below 1): on 32 cs/en val pairs with the
    embedded MiniLM (unit sentence vectors, d = 384) and half the cs side at 20 % random-char
    noise, MSE-KD's loss is 0.0048 (at most 4/d = 0.0104, antipodal vectors), and sending
    *every* query to the batch's mean vector raises it only to 0.0050; the KL at the default
    temperature 0.05 is 0.57 (0.14 at 0.1, 0.0011 at 1). A collapsed student has KL 0 (clean
    and noisy queries are the same vector), so at weight 1 the KL outweighs MSE-KD's anchor
    by two orders of magnitude and collapse costs it almost nothing; OT-KD's anchor does not
    see the pooled vector at all (a cosine of the content tokens: their lengths and
    [CLS]/[SEP], which mean pooling includes, are free). Only a weight that puts ``w_s · KL``
    below the anchor's cost of collapse (about 0.005 for MSE-KD: weights ≲ 0.01, or less
    with every sentence perturbed) keeps it.

    Args:
        clean: ``(k, d)`` the clean queries' embeddings (the target; detach it).
        noisy: ``(k, d)`` the noisy queries' embeddings.
        documents: ``(B, d)`` the in-batch documents (the teacher's English sentences).
        temperature: of the scores, > 0; 0.05 (scale 20) reproduces the term's first form.

    Returns:
        A scalar in float32 (0 when the two distributions agree).
    """
    scale = 1.0 / temperature  # 1 / 0.05 == 20.0 exactly: the first form's scale
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        docs = torch.nn.functional.normalize(documents.float(), dim=-1)
        s_clean = scale * torch.nn.functional.normalize(clean.float(), dim=-1) @ docs.T
        s_noisy = scale * torch.nn.functional.normalize(noisy.float(), dim=-1) @ docs.T
        return score_kl(s_clean, s_noisy)


def token_document_distribution(tokens: torch.Tensor, mask: torch.Tensor,
                                documents: torch.Tensor, temperature: float) -> torch.Tensor:
    """``(k, B)`` log of each query's mean token-to-document distribution:
    ``p_q = mean_{i ∈ mask_q} softmax_b(cos(x_i, E_b) / temperature)``.

    Args:
        tokens: ``(k, n, d)`` the query's token vectors; ``mask``: ``(k, n)`` bool, the
            content tokens (no [CLS]/[SEP]/padding: the tokens the OT term transports).
        documents: ``(B, d)`` the in-batch documents ``E``.
        temperature: > 0.
    """
    docs = torch.nn.functional.normalize(documents.float(), dim=-1)
    per_token = torch.softmax(
        torch.nn.functional.normalize(tokens.float(), dim=-1) @ docs.T / temperature, dim=-1)
    w = mask.to(per_token.dtype).unsqueeze(-1)  # (k, n, 1)
    mean = (per_token * w).sum(1) / w.sum(1).clamp_min(1.0)
    return mean.clamp_min(1e-30).log()


def token_self_teaching_kl(clean: torch.Tensor, clean_mask: torch.Tensor, noisy: torch.Tensor,
                           noisy_mask: torch.Tensor, documents: torch.Tensor,
                           temperature: float = SELF_TEACH_TEMPERATURE) -> torch.Tensor:
    """Self-Teaching on the token vectors (``self_teach_on="tokens"``):
    ``KL(p_clean ‖ p_noisy)`` of :func:`token_document_distribution`, mean over queries.

    Each content token scores the batch's documents; a query's distribution is the mean of
    its tokens' (the two readings may have different tokens, but the documents are shared).
    Why tokens: the term then acts on the unit-normalised content tokens that OT-KD's anchor
    transports, so neither the tokens' lengths nor [CLS]/[SEP] can absorb it; collapsing
    the tokens' directions to one would raise the OT cost ``1 − cos`` of every transported
    pair, which is of the order of the KL itself, not 1/d of it as MSE-KD's loss is (in the
    tiny test, weight 0.01 keeps the vectors apart even with every sentence perturbed,
    where the pooled and scores KLs do not). The teacher's English *tokens* are
    not used (MSE-KD's dataset holds only sentence embeddings); its sentence embeddings are.

    Args:
        clean, noisy: ``(k, n_c, d)`` / ``(k, n_n, d)`` token vectors (detach ``clean``).
        clean_mask, noisy_mask: ``(k, n_c)`` / ``(k, n_n)`` bool, their content tokens.
        documents: ``(B, d)`` the teacher's English sentence embeddings of the batch.
        temperature: > 0.

    Returns:
        A scalar in float32, ≥ 0; 0 when both readings have the same content tokens.
    """
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        log_p = token_document_distribution(clean, clean_mask, documents, temperature)
        log_q = token_document_distribution(noisy, noisy_mask, documents, temperature)
        return torch.nn.functional.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def centred_self_teaching_kl(clean: torch.Tensor, noisy: torch.Tensor, documents: torch.Tensor,
                             batch: torch.Tensor,
                             temperature: float = SELF_TEACH_TEMPERATURE) -> torch.Tensor:
    """Self-Teaching on centred scores (``self_teach_on="scores"``): as
    :func:`self_teaching_kl`, with each document's score centred on the batch's mean score
    of that document, ``S(q)_b = (cos(q, E_b) − mean_{q'} cos(q', E_b)) / temperature``.

    Why centred: the softmax ignores a shift of one query's scores (a row), not a shift of
    one document's scores shared by every query (a column). A component that every query
    shares (mean pooling's [CLS]/[SEP] grown large, say) is such a column shift: it makes
    the documents near that component "hubs" that win every query's softmax, so clean and
    noisy readings agree on them whatever their own content, and the raw KL can shrink
    towards its collapsed value 0 without the noisy query keeping its own ranking. The
    centred scores keep only what sets a query apart from the batch; the KL then asks the
    noisy query to keep the clean one's *distinctive* preferences. The column means come from
    the whole batch's student vectors and are detached: a shared offset, not a target.

    Args:
        clean, noisy: ``(k, d)`` the pooled vectors (detach ``clean``).
        documents: ``(B, d)`` the teacher's English sentence embeddings of the batch.
        batch: ``(B', d)`` the student's sentence vectors of the whole batch (detached here).
        temperature: > 0.

    Returns:
        A scalar in float32, ≥ 0; 0 when the two readings agree.
    """
    n = torch.nn.functional.normalize
    with torch.autocast(device_type=noisy.device.type, enabled=False):
        docs = n(documents.float(), dim=-1)
        mean_score = (n(batch.detach().float(), dim=-1) @ docs.T).mean(0)  # (B,)
        s_clean = (n(clean.float(), dim=-1) @ docs.T - mean_score) / temperature
        s_noisy = (n(noisy.float(), dim=-1) @ docs.T - mean_score) / temperature
        return score_kl(s_clean, s_noisy)


@dataclass(frozen=True)
class Reading:
    """What Self-Teaching reads of one reading (clean or noisy) of the ``k`` changed rows.

    Attributes:
        tokens: ``(k, n, d)`` the student's token vectors.
        mask: ``(k, n)`` bool, the content tokens (no [CLS]/[SEP]/padding).
        pooled: ``(k, d)`` the student's sentence vectors.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    @classmethod
    def of(cls, out: dict[str, torch.Tensor], features: dict[str, torch.Tensor],
           special: torch.Tensor) -> Reading:
        """The reading of a student's output (``token_embeddings``, ``sentence_embedding``)
        on ``features`` (its content tokens: :func:`mask_of` with the ``special`` ids)."""
        return cls(out["token_embeddings"], mask_of(features, special), out["sentence_embedding"])

    @classmethod
    def target(cls, out: dict[str, torch.Tensor], features: dict[str, torch.Tensor],
               special: torch.Tensor) -> Reading:
        """:meth:`of`, detached: the clean reading that Self-Teaching teaches from."""
        r = cls.of(out, features, special)
        return cls(r.tokens.detach(), r.mask, r.pooled.detach())


def self_teaching_term(on: str, temperature: float, documents: torch.Tensor,
                       batch: torch.Tensor, clean: Reading, noisy: Reading) -> torch.Tensor:
    """Self-Teaching's ``L_st`` where ``on`` (``self_teach_on``) says: ``pooled``
    (:func:`self_teaching_kl`), ``tokens`` (:func:`token_self_teaching_kl`) or ``scores``
    (:func:`centred_self_teaching_kl`, centred on the mean of ``batch``, detached).

    Args:
        on, temperature: ``self_teach_on`` and ``self_teach_temperature``.
        documents: ``(B, d)`` the teacher's English sentence embeddings of the batch.
        batch: ``(B, d)`` the student's sentence vectors of the whole batch (the KD input).
        clean: the target reading (detach its tensors); ``noisy``: the reading that learns.
    """
    if on == "tokens":
        return token_self_teaching_kl(clean.tokens, clean.mask, noisy.tokens, noisy.mask,
                                      documents, temperature)
    if on == "scores":
        return centred_self_teaching_kl(clean.pooled, noisy.pooled, documents, batch,
                                        temperature)
    return self_teaching_kl(clean.pooled, noisy.pooled, documents, temperature)


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
