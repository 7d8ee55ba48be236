"""The in-training x→en retrieval check (MRR@10 and accuracy) run at every evaluation step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from optical_core.distill.config import DistillError

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
    from optical_core.encoders.transformer import (
        locked_import,  # a page may be importing sentence_transformers too
    )

    return locked_import("sentence_transformers.sentence_transformer.evaluation").SentenceEvaluator


class RetrievalEvaluator(_evaluator_base()):
    """x→en dense retrieval on parallel lines (query foreign line i, relevant English line i).

    Cosine of pooled, normalised embeddings: the student embeds the foreign queries; the
    English documents are ``doc_embeddings`` when given (OPTICAL's setting: the frozen
    teacher's index, embedded once before training) and else the student's own. Metrics: ``mrr@10``
    (primary), ``accuracy_x2en`` (Recall@1), ``accuracy_en2x`` and ``accuracy`` (their mean,
    the "translation accuracy" of sentence-transformers' TranslationEvaluator).
    """

    def __init__(self, src_texts: Sequence[str], en_texts: Sequence[str], name: str = "val",
                 batch_size: int = 64, doc_embeddings: np.ndarray | None = None) -> None:
        super().__init__()
        if len(src_texts) != len(en_texts) or not src_texts:
            raise DistillError("the evaluation set needs the same, non-zero number of lines per "
                               "side")
        self.src_texts = list(src_texts)
        self.en_texts = list(en_texts)
        self.name = name
        self.batch_size = batch_size
        self.primary_metric = "mrr@10"
        if doc_embeddings is not None and len(doc_embeddings) != len(self.en_texts):
            raise DistillError("one document embedding per English line is needed")
        self.doc_embeddings = (None if doc_embeddings is None
                               else np.asarray(doc_embeddings, dtype=np.float32))

    def __call__(self, model, output_path=None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        model = getattr(model, "module", model)
        was_training = model.training
        try:
            q = model.encode(self.src_texts, batch_size=self.batch_size, convert_to_numpy=True,
                             normalize_embeddings=True, show_progress_bar=False)
            d = self.doc_embeddings
            if d is None:
                d = model.encode(self.en_texts, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
        finally:
            model.train(was_training)
        metrics = mrr_and_accuracy(np.asarray(q, dtype=np.float32), np.asarray(d, dtype=np.float32))
        return self.prefix_name_to_metrics(metrics, self.name)
