"""optical_core.distill.cooc and the co-occurrence cost in OpticalLoss: the table of the
training bitext lines up with the teacher cache's rows, the cost changes the plan, λ = 0
is the plain loss, and the probe shows the plan the loss uses."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from optical_core import demo_set
from optical_core.distill.config import TRAINING_OT, DistillConfig, DistillError
from optical_core.distill.cooc import bitext_cooc, content_ids
from optical_core.distill.loss import OpticalLoss, OpticalLossConfig
from optical_core.distill.loss_terms import mask_of
from optical_core.distill.teacher_cache import encode_teacher


def _load(path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def _features(model, texts):
    return {k: v for k, v in model.tokenize(texts).items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module")
def setting(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    student.eval()
    pairs = [(p.src, p.tgt) for p in demo_set.load_demo("de")]
    cooc = bitext_cooc(DistillConfig(data="demo", cooc_weight=0.5), student, teacher, pairs)
    return student, teacher, pairs, cooc


def test_english_ids_line_up_with_the_teacher_cache(setting):
    student, teacher, pairs, cooc = setting
    english = [en for en, _ in pairs]
    cached = encode_teacher(teacher, english)
    assert torch.equal(cooc.offsets, cached.offsets)
    rows = torch.tensor([2, 0, 1])
    ids = cooc.english_ids(rows)
    _, mask, _ = cached.batch(rows)
    assert ids.shape == mask.shape and torch.equal(ids >= 0, mask)
    for b, r in enumerate(rows.tolist()):
        assert ids[b][mask[b]].tolist() == content_ids(teacher, [english[r]])[0]
    assert cooc.table.n_pairs == len(pairs)


def test_the_cooc_cost_changes_the_plan_and_zero_weight_is_plain(setting):
    student, teacher, pairs, cooc = setting
    en_texts, de_texts = [p[0] for p in pairs[:3]], [p[1] for p in pairs[:3]]
    en_f, x_f = _features(student, en_texts), _features(student, de_texts)
    mixed = OpticalLoss(student, teacher,
                        OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=0.05), cooc_weight=0.5),
                        cooc=cooc)
    plain = OpticalLoss(student, teacher, OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=0.05)))
    with torch.no_grad():
        xt = student(dict(x_f))["token_embeddings"]
        et = teacher(dict(en_f))["token_embeddings"]
        xm = mask_of(x_f, mixed.student_special)
        em = mask_of(en_f, mixed.teacher_special)
        c = mixed.cooc_cost(x_f, en_f, None, et)
        assert c.shape == (3, xt.shape[1], et.shape[1])
        assert float(c.min()) >= 0 and float(c.max()) <= 2
        cost_mixed, plan_mixed, emb_cost = mixed.ot_cost(xt, xm, et, em, c)
        _, plan_plain, _ = plain.ot_cost(xt, xm, et, em)
        exact_fn = OpticalLoss(student, teacher,
                               OpticalLossConfig(ot=replace(TRAINING_OT, solver="exact")))
        exact, _, _ = exact_fn.ot_cost(xt, xm, et, em)
    assert (plan_mixed - plan_plain).abs().sum(dim=(1, 2)).min() > 0.05  # the plans move
    # the loss stays the embedding cost transported by the (mixed) plan
    assert torch.allclose((plan_mixed * emb_cost).sum(dim=(1, 2)), cost_mixed)
    assert torch.all(cost_mixed >= exact - 1e-5)
    with torch.no_grad():
        value = mixed([en_f, x_f], None).item()
        zero = OpticalLoss(student, teacher,
                           OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=0.05),
                                             cooc_weight=0.0), cooc=cooc)
        assert zero.cooc is None
        assert zero([en_f, x_f], None).item() == plain([en_f, x_f], None).item()
    assert value == pytest.approx(mixed.last_components["ot"])
    snap_mixed = mixed.probe(de_texts[0], en_texts[0])
    snap_plain = plain.probe(de_texts[0], en_texts[0])
    assert snap_mixed["plan"] != snap_plain["plan"]


def test_cooc_with_the_teacher_cache_reads_the_cached_rows(setting):
    student, teacher, pairs, cooc = setting
    cached = encode_teacher(teacher, [en for en, _ in pairs])
    rows = torch.tensor([0, 1, 2])
    en_f = _features(student, [pairs[i][0] for i in rows.tolist()])
    x_f = _features(student, [pairs[i][1] for i in rows.tolist()])
    fn = OpticalLoss(student, teacher,
                     OpticalLossConfig(cooc_weight=0.5), cooc=cooc, teacher_embeddings=cached)
    with torch.no_grad():
        assert torch.isfinite(fn([en_f, x_f], rows))
    with pytest.raises(DistillError, match="co-occurrence table"):
        OpticalLoss(student, teacher, OpticalLossConfig(cooc_weight=0.5))
