"""optical_core.distill.loss_terms: Self-Teaching's three KLs (``self_teach_on``: pooled,
tokens, scores) and their temperature, and what keeps a student from collapsing under them.

The math tests draw random vectors (hypothesis); the collapse tests train a tiny random
student (2 layers, width 32) a few dozen steps with MSE-KD onto spread-out targets.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from optical_core.distill.config import SELF_TEACH_ON, SELF_TEACH_TEMPERATURE
from optical_core.distill.loss_terms import (
    Reading,
    centred_self_teaching_kl,
    score_kl,
    self_teaching_kl,
    self_teaching_term,
    token_self_teaching_kl,
)

n = torch.nn.functional.normalize
temperatures = st.floats(0.01, 5.0)


def _vectors(seed: int, k: int = 3, b: int = 5, d: int = 8, tokens: int = 4):
    """Random clean and noisy readings (pooled and token vectors, the last token of row 0
    padding), the in-batch documents and the whole batch's vectors."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(k, tokens, dtype=torch.bool)
    mask[0, -1] = False
    clean = Reading(torch.randn(k, tokens, d, generator=g), mask, torch.randn(k, d, generator=g))
    noisy = Reading(torch.randn(k, tokens, d, generator=g), mask, torch.randn(k, d, generator=g))
    return clean, noisy, torch.randn(b, d, generator=g), torch.randn(b + 2, d, generator=g)


def _kl(on: str, clean: Reading, noisy: Reading, docs, batch, temperature=SELF_TEACH_TEMPERATURE):
    return self_teaching_term(on, temperature, docs, batch, clean, noisy)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), on=st.sampled_from(SELF_TEACH_ON), temperature=temperatures)
def test_each_kl_is_zero_for_equal_readings_and_never_negative(seed, on, temperature):
    clean, noisy, docs, batch = _vectors(seed)
    assert _kl(on, clean, clean, docs, batch, temperature).item() == pytest.approx(0, abs=1e-5)
    assert _kl(on, clean, noisy, docs, batch, temperature).item() >= -1e-6


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), on=st.sampled_from(SELF_TEACH_ON))
def test_each_kl_is_finite_float32_under_bf16_autocast(seed, on):
    clean, noisy, docs, batch = _vectors(seed)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf = [Reading(r.tokens.bfloat16(), r.mask, r.pooled.bfloat16()) for r in (clean, noisy)]
        out = _kl(on, *bf, docs.bfloat16(), batch.bfloat16())
    assert out.dtype == torch.float32 and math.isfinite(out.item())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), temperature=temperatures)
def test_pooled_kl_is_the_kl_of_cosines_over_the_temperature(seed, temperature):
    clean, noisy, docs, _ = _vectors(seed)
    s = [n(r.pooled, dim=-1) @ n(docs, dim=-1).T / temperature for r in (clean, noisy)]
    lp, lq = torch.log_softmax(s[0], 1), torch.log_softmax(s[1], 1)
    ref = (lp.exp() * (lp - lq)).sum(1).mean()  # KL(clean ‖ noisy), mean over queries
    got = self_teaching_kl(clean.pooled, noisy.pooled, docs, temperature)
    assert got.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)
    assert score_kl(s[0], s[1]).item() == pytest.approx(got.item(), rel=1e-5, abs=1e-7)


def test_the_default_temperature_is_the_first_forms_scale_20_to_the_bit():
    clean, noisy, docs, _ = _vectors(0)
    first = score_kl(20.0 * n(clean.pooled, dim=-1) @ n(docs, dim=-1).T,
                     20.0 * n(noisy.pooled, dim=-1) @ n(docs, dim=-1).T)
    assert SELF_TEACH_TEMPERATURE == 0.05
    assert torch.equal(self_teaching_kl(clean.pooled, noisy.pooled, docs), first)


def test_a_higher_temperature_flattens_the_scores_and_shrinks_the_kl():
    clean, noisy, docs, batch = _vectors(1)
    for on in SELF_TEACH_ON:
        kls = [_kl(on, clean, noisy, docs, batch, t).item() for t in (0.05, 1.0, 100.0)]
        assert kls[0] > kls[1] > kls[2] >= 0, (on, kls)
        assert kls[2] < 1e-3  # at T → ∞ every distribution is uniform: nothing to teach


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), temperature=temperatures)
def test_token_kl_is_the_kl_of_mean_token_distributions(seed, temperature):
    clean, noisy, docs, _ = _vectors(seed)

    def dist(r: Reading) -> torch.Tensor:
        per_token = torch.softmax(n(r.tokens, dim=-1) @ n(docs, dim=-1).T / temperature, -1)
        w = r.mask.float().unsqueeze(-1)
        return (per_token * w).sum(1) / w.sum(1)

    p, q = dist(clean), dist(noisy)
    ref = (p * (p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log())).sum(1).mean()
    got = token_self_teaching_kl(clean.tokens, clean.mask, noisy.tokens, noisy.mask, docs,
                                 temperature)
    assert got.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)


def test_token_kl_ignores_padding_special_tokens_and_token_lengths():
    clean, noisy, docs, _ = _vectors(2)
    base = token_self_teaching_kl(clean.tokens, clean.mask, noisy.tokens, noisy.mask, docs)
    tokens = noisy.tokens.clone()
    tokens[0, -1] = 1e3  # a masked token ([CLS]/[SEP]/padding): carries nothing
    tokens[1] *= torch.arange(1.0, 5.0).unsqueeze(-1)  # longer vectors, same directions
    moved = token_self_teaching_kl(clean.tokens, clean.mask, tokens, noisy.mask, docs)
    assert moved.item() == pytest.approx(base.item(), rel=1e-5)
    # the two readings may differ in length: the documents are the shared support
    short = token_self_teaching_kl(clean.tokens, clean.mask, noisy.tokens[:, :2],
                                   noisy.mask[:, :2], docs)
    assert math.isfinite(short.item()) and short.item() != pytest.approx(base.item())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), temperature=temperatures)
def test_centred_kl_centres_each_documents_score_on_the_batch(seed, temperature):
    clean, noisy, docs, batch = _vectors(seed)
    mean_score = (n(batch, dim=-1) @ n(docs, dim=-1).T).mean(0)
    s = [(n(r.pooled, dim=-1) @ n(docs, dim=-1).T - mean_score) / temperature
         for r in (clean, noisy)]
    got = centred_self_teaching_kl(clean.pooled, noisy.pooled, docs, batch, temperature)
    assert got.item() == pytest.approx(score_kl(s[0], s[1]).item(), rel=1e-4, abs=1e-6)


def test_centring_removes_a_documents_shared_score_which_the_softmax_would_not():
    clean, noisy, docs, batch = _vectors(4)
    # a row shift is nothing to the softmax, a column shift is: the centring is not a no-op
    raw = self_teaching_kl(clean.pooled, noisy.pooled, docs)
    centred = centred_self_teaching_kl(clean.pooled, noisy.pooled, docs, batch)
    assert centred.item() != pytest.approx(raw.item(), rel=1e-2)
    # the centre is the batch's: a batch leaning towards one document lowers its scores
    hub = batch + 5 * n(docs[:1], dim=-1)
    assert centred_self_teaching_kl(clean.pooled, noisy.pooled, docs, hub).item() != \
        pytest.approx(centred.item(), rel=1e-3)


def test_each_place_has_a_kl_of_its_own():
    """Every value of SELF_TEACH_ON has its own KL (three different numbers)."""
    clean, noisy, docs, batch = _vectors(3)
    kls = {on: _kl(on, clean, noisy, docs, batch, 0.1).item() for on in SELF_TEACH_ON}
    assert len({round(v, 6) for v in kls.values()}) == 3, kls


# ------------------------------------------------------------------- collapse


@pytest.fixture(scope="module")
def collapse_setup(tiny, tiny_other):
    """A tiny student, a teacher, 8 demo pairs (every ``every``-th cs sentence at 20 %
    random-char noise) and spread-out unit targets for MSE-KD (mean pairwise cosine about
    0, where the untrained student's vectors sit at about 0.96)."""
    from sentence_transformers import SentenceTransformer

    from optical_core.demo_set import load_demo
    from optical_core.perturb.noise import perturb

    pairs = [(p.src, p.tgt) for p in load_demo("de")][:8]
    foreign, english = [p[0] for p in pairs], [p[1] for p in pairs]

    def noisy(every: int) -> list[str]:
        return [perturb(s, "random_char", 0.2, seed=i, lang="de").text if i % every == 0
                else s for i, s in enumerate(foreign)]

    g = torch.Generator().manual_seed(0)
    targets = n(torch.randn(len(pairs), 32, generator=g), dim=-1)
    return (lambda: SentenceTransformer(tiny_other, device="cpu"),
            SentenceTransformer(tiny, device="cpu"), foreign, english, noisy, targets)


def _mean_pairwise_cosine(model, texts: list[str]) -> float:
    model.eval()
    with torch.no_grad():
        v = model.encode(texts, convert_to_tensor=True)
    model.train()
    c, k = v @ v.T, len(texts)
    return float((c.sum() - c.diag().sum()) / (k * (k - 1)))


def _train(setup, on: str, weight: float, every: int, steps: int = 60) -> tuple[float, float]:
    """The student's mean pairwise cosine on the clean sentences before and after ``steps``
    full-batch AdamW steps (lr 1e-2) of MSE-KD (weight 1) + ``weight`` · Self-Teaching."""
    from optical_core.distill.loss import OpticalLoss, OpticalLossConfig

    load_student, teacher, foreign, english, noisy, targets = setup
    torch.manual_seed(0)
    student = load_student()
    fn = OpticalLoss(student, teacher, OpticalLossConfig(
        ot_weight=0.0, mse_weight=1.0, self_teach_weight=weight, self_teach_on=on))

    def feats(texts):
        return {k: v for k, v in student.tokenize(texts).items() if isinstance(v, torch.Tensor)}

    batch = [feats(english), feats(noisy(every)), feats(foreign)]
    before = _mean_pairwise_cosine(student, foreign)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a width-32 model: more threads only wait on a busy machine
    try:
        for _ in range(steps):
            opt.zero_grad()
            fn(batch, targets).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return before, _mean_pairwise_cosine(student, foreign)


#: "Not collapsed": the mean pairwise cosine of the student's clean sentence vectors ends
#: below 0.6. The untrained student starts at ~0.96 (a random BERT's mean-pooled vectors
#: share most of their direction) and the targets sit at ~0; the anchor alone brings the
#: student to ~0.3 in these steps, and a collapsed student reads ~1. Below 0.6 the anchor
#: has done most of its work against the Self-Teaching term; above 0.99 it lost.
NOT_COLLAPSED = 0.6


@pytest.mark.parametrize("on", SELF_TEACH_ON)
def test_a_small_weight_leaves_the_anchor_in_charge(collapse_setup, on):
    """At weight 0.01 with half the sentences perturbed (the grids' noise_p 0.5) the
    student's vectors spread out as under the anchor alone."""
    before, after = _train(collapse_setup, on, 0.01, every=2)
    assert before > 0.9 and after < NOT_COLLAPSED, (on, before, after)


@pytest.mark.parametrize(("on", "every"), [("pooled", 1), ("tokens", 2), ("scores", 2)])
def test_an_absurd_weight_collapses_the_student(collapse_setup, on, every):
    """At weight 100 the KL wins and the vectors collapse: the bound above can fail. With
    half the sentences perturbed the pooled KL reaches 0 here without collapse (the four
    perturbed sentences learn to read as their clean twins, at 75 times the anchor's MSE),
    so its collapse is shown with every sentence perturbed."""
    _, after = _train(collapse_setup, on, 100.0, every=every)
    assert after > 0.99, (on, after)
