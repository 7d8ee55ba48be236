"""optical_core.distill.loss: the OT distillation loss (gradients to the student only,
masking, balanced and unbalanced transport, combined terms, bad options).

Almost everything uses a tiny random BERT (2 layers, width 32, MiniLM tokenizer; the
``tiny`` and ``tiny_other`` fixtures in conftest.py) and the packaged demo pairs, so no
Multi30k copy is needed and a full run takes seconds. One test loads the real embedded
MiniLM.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from optical_core.distill.config import TRAINING_OT, DistillConfig, DistillError
from optical_core.distill.loss import OpticalLoss, OpticalLossConfig
from optical_core.distill.loss_terms import mask_of, self_teaching_kl
from optical_core.ot.config import OTInputError

EN = ["A dog runs along the beach.", "Two children are playing football in the park.",
      "A woman is reading a book."]
DE = ["Ein Hund läuft am Strand entlang.", "Zwei Kinder spielen Fußball im Park.",
      "Eine Frau liest ein Buch."]


def _load(path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def _features(model, texts):
    feats = model.tokenize(texts)
    return {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}


def test_loss_gives_gradients_to_the_student_only(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    loss_fn = OpticalLoss(student, teacher)
    assert loss_fn.model is student
    assert not any(p is q for p in loss_fn.parameters() for q in teacher.parameters())
    assert all(not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    loss = loss_fn([_features(student, EN), _features(student, DE)], None)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in teacher.parameters())
    assert set(loss_fn.last_components) == {"ot"}
    assert 0 < loss_fn.last_ot_stats["iterations"] <= 300


def test_loss_is_zero_for_identical_inputs_with_exact_ot(tiny):
    """student = teacher on the same English text: the diagonal plan has cost 0, so the
    exact OT cost is 0; Sinkhorn with a tiny ε gets close to it from above."""
    student, teacher = _load(tiny), _load(tiny)
    student.eval()
    feats = _features(student, EN)
    exact = OpticalLoss(student, teacher,
                        OpticalLossConfig(ot=replace(TRAINING_OT, solver="exact")))
    with torch.no_grad():
        value = exact([feats, dict(feats)], None).item()
    assert abs(value) < 1e-6
    sk = OpticalLoss(student, teacher,
                     OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=1e-3, max_iter=3000)))
    with torch.no_grad():
        approx = sk([feats, dict(feats)], None).item()
        ref_fn = OpticalLoss(student, teacher,
                             OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=0.01)))
        ref = ref_fn([feats, dict(feats)], None).item()
    assert 0 <= approx < 0.1 * ref + 1e-4  # shrinks with ε towards the exact optimum 0


def test_plan_masks_padding_and_special_tokens(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    loss_fn = OpticalLoss(student, teacher)
    xf, ef = _features(student, DE), _features(teacher, EN)
    with torch.no_grad():
        xt = student(dict(xf))["token_embeddings"]
        et = teacher(dict(ef))["token_embeddings"]
        xm = mask_of(xf, loss_fn.student_special)
        em = mask_of(ef, loss_fn.teacher_special)
        per_pair, plan, _ = loss_fn.ot_cost(xt, xm, et, em)
    # [CLS]/[SEP] and padding are out: the first column/row ([CLS]) carries no mass
    assert torch.all(plan[:, 0, :] == 0) and torch.all(plan[:, :, 0] == 0)
    assert torch.all(plan[~xm] == 0)
    assert torch.all(plan.transpose(1, 2)[~em] == 0)
    np.testing.assert_allclose(plan.sum((1, 2)).numpy(), 1.0, atol=1e-4)
    # the exact optimum is a lower bound of the entropic plan's transport cost
    exact = OpticalLoss(student, teacher,
                        OpticalLossConfig(ot=replace(TRAINING_OT, solver="exact")))
    with torch.no_grad():
        ex, _, _ = exact.ot_cost(xt, xm, et, em)
    assert torch.all(per_pair >= ex - 1e-5)


def test_combined_loss_reports_both_terms(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    loss_fn = OpticalLoss(student, teacher, OpticalLossConfig(mse_weight=1.0, align_english=True))
    total = loss_fn([_features(student, EN), _features(student, DE)], None)
    comps = loss_fn.last_components
    assert set(comps) == {"ot", "ot_en", "mse"}
    assert total.item() == pytest.approx(comps["ot"] + comps["ot_en"] + comps["mse"], rel=1e-5)


def test_unbalanced_loss_relaxes_the_marginals_and_trains_the_student_only(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    feats = [_features(student, EN), _features(student, DE)]
    balanced = OpticalLoss(student, teacher,
                           OpticalLossConfig(ot=replace(TRAINING_OT, epsilon=0.05, max_iter=3000)))
    with torch.no_grad():
        ref = balanced(feats, None).item()
    masses, values = [], []
    for tau in (0.05, 1.0, 20.0):
        fn = OpticalLoss(student, teacher,
                         OpticalLossConfig(ot=replace(TRAINING_OT, solver="unbalanced", tau=tau,
                                                      epsilon=0.05, max_iter=5000)))
        with torch.no_grad():
            values.append(fn(feats, None).item())
        assert fn.last_ot_stats["converged"] == 1.0
        masses.append(fn.last_ot_stats["mass"])
    # small τ: most mass stays put; large τ: nearly all of it moves, as balanced OT does
    assert masses[0] < masses[1] < masses[2] < 1.0
    assert masses[0] < 0.05 and masses[2] > 0.95
    assert values[2] == pytest.approx(ref, rel=0.05)

    loss_fn = OpticalLoss(student, teacher,
                          OpticalLossConfig(ot=replace(TRAINING_OT, solver="unbalanced", tau=1.0)))
    assert not any(p is q for p in loss_fn.parameters() for q in teacher.parameters())
    loss = loss_fn(feats, None)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_bad_loss_options_are_refused(tiny):
    student, teacher = _load(tiny), _load(tiny)
    # the OT settings are an OTConfig: it refuses what no solver takes
    with pytest.raises(OTInputError, match="ε"):
        replace(TRAINING_OT, epsilon=0)
    with pytest.raises(OTInputError, match="solver"):
        replace(TRAINING_OT, solver="magic")
    with pytest.raises(OTInputError, match="τ"):
        replace(TRAINING_OT, solver="unbalanced", tau=0.0)
    with pytest.raises(DistillError, match="solver"):  # a solver the loss does not offer
        OpticalLoss(student, teacher, OpticalLossConfig(ot=replace(TRAINING_OT, solver="partial")))
    with pytest.raises(DistillError, match="τ"):
        DistillConfig.from_options(ot_solver="unbalanced", ot_tau=float("nan")).validate()
    with pytest.raises(DistillError, match="loss"):
        DistillConfig(loss="kl").validate()
    with pytest.raises(DistillError, match="language"):
        DistillConfig(lang="xx").validate()


# ------------------------------------------------------------- robustness terms (issue 15)

#: The German sentences as a noisy student reads them: two of three perturbed.
DE_NOISY = [DE[0].replace("Hund", "Hnud").replace("Strand", "Starnd"), DE[1],
            DE[2].replace("liest", "lisst")]


def _robust_inputs(tiny, tiny_other):
    student, teacher = _load(tiny_other), _load(tiny)
    student.eval()  # no dropout: the two readings differ only where the text does
    feats = [_features(student, EN), _features(student, DE_NOISY), _features(student, DE)]
    return student, teacher, feats


def _grads(student, loss_fn, feats, labels=None) -> torch.Tensor:
    student.zero_grad()
    loss_fn(feats, labels).backward()
    return torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None])


def test_consistency_term_has_a_gradient_and_skips_unchanged_sentences(tiny, tiny_other):
    student, teacher, feats = _robust_inputs(tiny, tiny_other)
    fn = OpticalLoss(student, teacher, OpticalLossConfig(consistency_weight=1.0))
    total = fn(feats, None)
    comps = fn.last_components
    assert comps["noisy_share"] == pytest.approx(2 / 3)
    assert comps["consistency"] > 0
    assert total.item() == pytest.approx(comps["ot"] + comps["consistency"], rel=1e-5)
    assert "consistency_iterations" in fn.last_ot_stats and "iterations" in fn.last_ot_stats
    # the term moves the student: the gradient with it differs from the one without
    off = OpticalLoss(student, teacher, OpticalLossConfig(consistency_weight=0.0))
    assert not torch.allclose(_grads(student, fn, feats), _grads(student, off, feats))
    # two identical readings: nothing to be consistent about, no term
    with torch.no_grad():
        fn([feats[0], feats[2], dict(feats[2])], None)
    assert fn.last_components["consistency"] == 0 and fn.last_components["noisy_share"] == 0
    # the term needs the clean column
    with pytest.raises(DistillError, match="third column"):
        fn(feats[:2], None)


def test_kd_input_clean_trains_on_the_clean_sentence(tiny, tiny_other):
    student, teacher, feats = _robust_inputs(tiny, tiny_other)
    with torch.no_grad():
        on_clean = OpticalLoss(student, teacher,
                               OpticalLossConfig(kd_input="clean", consistency_weight=1.0))
        on_clean(feats, None)
        plain = OpticalLoss(student, teacher)
        plain([feats[0], feats[2]], None)
        on_noisy = OpticalLoss(student, teacher, OpticalLossConfig(consistency_weight=1.0))
        on_noisy(feats, None)
    assert on_clean.last_components["ot"] == pytest.approx(plain.last_components["ot"], rel=1e-5)
    assert on_noisy.last_components["ot"] != pytest.approx(plain.last_components["ot"], rel=1e-3)
    # the consistency term is the same transport either way (noisy onto clean)
    assert on_clean.last_components["consistency"] == pytest.approx(
        on_noisy.last_components["consistency"], rel=1e-4)
    with pytest.raises(DistillError, match="kd_input"):
        OpticalLoss(student, teacher, OpticalLossConfig(kd_input="both"))


def test_self_teaching_kl_matches_its_formula():
    torch.manual_seed(0)
    clean, noisy, docs = torch.randn(3, 8), torch.randn(3, 8), torch.randn(5, 8)
    assert self_teaching_kl(clean, clean, docs).item() == pytest.approx(0.0, abs=1e-6)
    n = torch.nn.functional.normalize
    p = torch.softmax(20 * n(clean, dim=-1) @ n(docs, dim=-1).T, dim=1)
    q = torch.softmax(20 * n(noisy, dim=-1) @ n(docs, dim=-1).T, dim=1)
    ref = (p * (p.log() - q.log())).sum(1).mean()  # KL(clean ‖ noisy), mean over queries
    assert self_teaching_kl(clean, noisy, docs).item() == pytest.approx(ref.item(), rel=1e-5)


def test_self_teaching_term_has_a_gradient_alone_and_with_mse(tiny, tiny_other):
    student, teacher, feats = _robust_inputs(tiny, tiny_other)
    fn = OpticalLoss(student, teacher, OpticalLossConfig(self_teach_weight=1.0))
    fn(feats, None)
    assert fn.last_components["self_teach"] > 0
    off = OpticalLoss(student, teacher)
    assert not torch.allclose(_grads(student, fn, feats), _grads(student, off, feats))
    # with MSE-KD: the dataset's labels are the teacher's sentence embeddings
    labels = torch.as_tensor(teacher.encode(EN, convert_to_numpy=True))
    mse_st = OpticalLoss(student, teacher,
                         OpticalLossConfig(ot_weight=0.0, mse_weight=1.0, self_teach_weight=1.0))
    mse = OpticalLoss(student, teacher, OpticalLossConfig(ot_weight=0.0, mse_weight=1.0))
    assert not torch.allclose(_grads(student, mse_st, feats, labels),
                              _grads(student, mse, feats, labels))
    assert set(mse_st.last_components) == {"mse", "self_teach", "noisy_share"}


@pytest.mark.parametrize("on", ["pooled", "tokens", "scores"])
def test_each_self_teaching_place_trains_the_student_through_the_loss(tiny, tiny_other, on):
    student, teacher, feats = _robust_inputs(tiny, tiny_other)
    fn = OpticalLoss(student, teacher, OpticalLossConfig(self_teach_weight=1.0, self_teach_on=on,
                                                         self_teach_temperature=0.1))
    total = fn(feats, None)
    comps = fn.last_components
    assert comps["self_teach"] > 0
    assert total.item() == pytest.approx(comps["ot"] + comps["self_teach"], rel=1e-5)
    off = OpticalLoss(student, teacher)
    assert not torch.allclose(_grads(student, fn, feats), _grads(student, off, feats))
    with torch.no_grad():  # two identical readings: nothing to teach
        fn([feats[0], feats[2], dict(feats[2])], None)
    assert fn.last_components["self_teach"] == 0
    for bad, match in (({"self_teach_on": "cls"}, "unknown self_teach_on"),
                       ({"self_teach_temperature": 0.0}, "self_teach_temperature must be > 0")):
        with pytest.raises(DistillError, match=match):
            OpticalLossConfig(self_teach_weight=1.0, **bad)


def test_mse_through_optical_loss_equals_sentence_transformers_mse(tiny, tiny_other):
    """MSE-KD routed through OpticalLoss (when it carries a robustness term) computes
    exactly sentence-transformers' MSELoss."""
    from sentence_transformers.sentence_transformer.losses import MSELoss

    student, teacher, feats = _robust_inputs(tiny, tiny_other)
    labels = torch.as_tensor(teacher.encode(EN, convert_to_numpy=True))
    with torch.no_grad():
        ours = OpticalLoss(student, teacher,
                           OpticalLossConfig(ot_weight=0.0, mse_weight=1.0))(feats[:2], labels)
        ref = MSELoss(student)(feats[:2], labels)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    with pytest.raises(DistillError, match="teacher's tokens"):
        OpticalLoss(student, teacher)(feats[:2], labels)


# ------------------------------------------------------------------------- real MiniLM


@pytest.mark.slow
def test_real_minilm_probe_and_exact_zero():
    """The embedded MiniLM: identical English input gives exact-OT loss 0, and the German
    probe's plan is a proper transport plan over the real tokens."""
    from optical_core.encoders.base import default_model_path

    student, teacher = _load(default_model_path()), _load(default_model_path())
    student.eval()
    feats = _features(student, EN[:2])
    loss_fn = OpticalLoss(student, teacher,
                          OpticalLossConfig(ot=replace(TRAINING_OT, solver="exact")))
    with torch.no_grad():
        assert abs(loss_fn([feats, dict(feats)], None).item()) < 1e-6
    snap = OpticalLoss(student, teacher).probe(DE[0], EN[0])
    plan = np.array(snap["plan"])
    assert plan.shape == (len(snap["src_tokens"]), len(snap["en_tokens"]))
    assert "[CLS]" not in snap["src_tokens"] and plan.sum() == pytest.approx(1, abs=1e-3)
    assert snap["en_tokens"][:2] == ["a", "dog"]


def test_the_loss_documents_itself_like_a_sentence_transformers_loss(tiny):
    student, teacher = _load(tiny), _load(tiny)
    loss_fn = OpticalLoss(student, teacher)
    assert "Huang, Zhiqi and Yu, Puxuan and Allan, James" in loss_fn.citation
    assert "2301.12566" in loss_fn.citation and "WSDM" in loss_fn.citation
    for section in ("Args:", "References:", "Inputs:", "Example:"):
        assert section in OpticalLoss.__doc__
    assert loss_fn.config == OpticalLossConfig()  # the OT part is one config object
