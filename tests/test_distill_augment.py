"""optical_core.distill.augment: the student's foreign input perturbed on the fly (seeded
noise per (seed, epoch, row), WordPiece dropout, the collator that feeds the loss) and
short runs with every robustness option, for OT-KD and for MSE-KD.

The tiny random BERT of conftest.py has the MiniLM tokenizer (a real WordPiece vocabulary);
the runs use the packaged demo pairs, two steps each.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from _helpers import distill_cfg

from optical_core.distill.augment import (
    CLEAN_COLUMN,
    ROW_COLUMN,
    AugmentingCollator,
    WordPieceDropout,
    augment_seed,
    epoch_callback,
    noisy_text,
)
from optical_core.distill.config import DistillConfig, DistillError
from optical_core.distill.train import run_distillation
from optical_core.perturb.cer import character_error_rate

DE = ["Ein Hund läuft am Strand entlang.", "Zwei Kinder spielen Fußball im Park.",
      "Eine Frau liest ein Buch auf einer Bank.", "Ein Mann fährt mit dem Fahrrad zur Arbeit."]


def _student(path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


# ------------------------------------------------------------------------------ noise


def test_noise_is_seeded_per_seed_epoch_and_row():
    kw = dict(seed=42, kinds=("random_char", "keyboard"), p=1.0, max_cer=0.2, lang="de")
    text = DE[2]
    first = noisy_text(text, row=3, epoch=0, **kw)
    assert first != text  # p = 1: perturbed
    assert noisy_text(text, row=3, epoch=0, **kw) == first  # reproducible
    others = {noisy_text(text, row=3, epoch=e, **kw) for e in range(1, 6)}
    others |= {noisy_text(text, row=r, epoch=0, **kw) for r in range(4, 9)}
    assert len(others - {first}) >= 8  # a new draw per epoch and per row
    assert noisy_text(text, 3, 0, seed=43, kinds=kw["kinds"], p=1.0, max_cer=0.2) != first
    assert noisy_text(text, 3, 0, seed=42, kinds=kw["kinds"], p=0.0, max_cer=0.2) == text
    assert augment_seed(42, 0, 3, "noise") != augment_seed(42, 0, 3, "subword")


def test_noise_share_and_cer_follow_the_options():
    kw = dict(seed=0, kinds=("random_char",), p=0.5, max_cer=0.2, lang="de")
    texts = [DE[r % len(DE)] for r in range(400)]
    noisy = [noisy_text(t, row=r, epoch=0, **kw) for r, t in enumerate(texts)]
    share = sum(n != t for n, t in zip(noisy, texts)) / len(texts)
    assert 0.38 < share < 0.55  # half drawn; a few draws of CER ~ 0 leave the text as it is
    cers = [character_error_rate(t, n) for n, t in zip(noisy, texts)]
    assert max(cers) <= 0.3 and sum(c > 0.1 for c in cers) > 20  # drawn from [0, 0.2]


def test_config_noise_kinds_and_validation():
    assert DistillConfig(noise_kind="random_char, typo").noise_kinds() == \
        ("random_char", "keyboard")
    with pytest.raises(DistillError, match="unknown noise kind"):
        DistillConfig(noise_p=0.5, noise_kind="keyboard,smudge").validate()
    for bad, msg in ((dict(noise_p=1.5), "noise_p"),
                     (dict(noise_p=0.5, noise_max_cer=0), "noise_max_cer"),
                     (dict(subword_dropout=-0.1), "subword_dropout"),
                     (dict(consistency_weight=1.0), "need noise_p > 0"),
                     (dict(noise_p=0.5, kd_input="clean"), "kd_input 'clean'"),
                     (dict(kd_input="both"), "kd_input"),
                     (dict(loss="mse", cooc_weight=0.5), "co-occurrence"),
                     (dict(cooc_weight=2.0), "cooc_weight"),
                     (dict(cooc_measure="pmi"), "co-occurrence measure")):
        with pytest.raises(DistillError, match=msg):
            DistillConfig.from_options(**bad).validate()


# --------------------------------------------------------------------- WordPiece dropout


def test_wordpiece_dropout_resegments_into_valid_pieces(tiny):
    tok = _student(tiny).tokenizer
    wpd = WordPieceDropout(tok)
    ids = tok(" ".join(DE), add_special_tokens=False)["input_ids"]
    assert wpd.resegment(ids, 0.0, random.Random(0)) == ids
    rng = random.Random(0)
    changed = 0
    for _ in range(20):
        new = wpd.resegment(ids, 0.3, rng)
        pieces = tok.convert_ids_to_tokens(new)
        assert all(i in wpd.inverse for i in new)  # every piece is in the vocabulary
        assert tok.convert_tokens_to_string(pieces) == tok.convert_tokens_to_string(
            tok.convert_ids_to_tokens(ids))  # the same surface
        changed += new != ids
        assert len(new) >= len(ids)
    assert changed >= 15
    # each original token becomes a first piece plus "##" continuations
    strand = tok.convert_tokens_to_ids(["strand"])
    for seed in range(10):
        pieces = tok.convert_ids_to_tokens(wpd.resegment(strand, 1.0, random.Random(seed)))
        assert len(pieces) > 1 and not pieces[0].startswith("##")
        assert all(p.startswith("##") for p in pieces[1:])
        assert "".join(p.removeprefix("##") for p in pieces) == "strand"


def test_wordpiece_dropout_needs_a_wordpiece_vocabulary():
    fake = SimpleNamespace(get_vocab=lambda: {"▁a": 0, "▁b": 1}, all_special_ids=[])
    with pytest.raises(DistillError, match="WordPiece"):
        WordPieceDropout(fake)


# ------------------------------------------------------------------------------ collator


def _collator(tiny, **kw):
    from sentence_transformers.sentence_transformer.data_collator import (
        SentenceTransformerDataCollator,
    )

    student = _student(tiny)
    student.max_seq_length = 16
    base = SentenceTransformerDataCollator(preprocess_fn=student.preprocess)
    cfg = DistillConfig.from_options(**{"seed": 7, **kw}).validate()
    return AugmentingCollator(base, cfg, student), base


def _rows(label=True):
    return [{"english": "A text.", "non_english": x, **({"label": i} if label else {}),
             ROW_COLUMN: i} for i, x in enumerate(DE)]


def test_collator_perturbs_the_foreign_side_and_adds_the_clean_one(tiny):
    col, base = _collator(tiny, noise_p=1.0, noise_max_cer=0.3, consistency_weight=0.5)
    batch = col(_rows())
    plain = base([{k: v for k, v in r.items() if k != ROW_COLUMN} for r in _rows()])
    assert batch["label"].tolist() == [0, 1, 2, 3]
    assert not any(k.startswith(ROW_COLUMN) for k in batch)
    assert torch.equal(batch[f"{CLEAN_COLUMN}_input_ids"], plain["non_english_input_ids"])
    assert torch.equal(batch["english_input_ids"], plain["english_input_ids"])
    assert not torch.equal(batch["non_english_input_ids"], plain["non_english_input_ids"])
    keys = list(batch)
    assert keys.index("english_input_ids") < keys.index("non_english_input_ids") < keys.index(
        f"{CLEAN_COLUMN}_input_ids")  # the loss's column order
    assert torch.equal(col(_rows())["non_english_input_ids"], batch["non_english_input_ids"])
    col.epoch = 1
    assert not torch.equal(col(_rows())["non_english_input_ids"], batch["non_english_input_ids"])
    # without a consistency / self-teaching term there is no clean column (MSELoss reads
    # every column it is given)
    col2, _ = _collator(tiny, noise_p=1.0)
    assert not any(k.startswith(CLEAN_COLUMN) for k in col2(_rows(label=False)))


def test_collator_subword_dropout_keeps_specials_and_the_length_limit(tiny):
    col, base = _collator(tiny, subword_dropout=0.5)
    batch = col(_rows())
    plain = base([{k: v for k, v in r.items() if k != ROW_COLUMN} for r in _rows()])
    ids, mask = batch["non_english_input_ids"], batch["non_english_attention_mask"]
    assert not torch.equal(ids, plain["non_english_input_ids"])
    assert ids.shape[1] <= 16
    assert torch.equal(batch["non_english_token_type_ids"], torch.zeros_like(ids))
    tok = col.dropout
    cls, sep = 101, 102
    for b in range(len(DE)):
        real = ids[b][mask[b].bool()].tolist()
        assert real[0] == cls and real[-1] == sep and len(real) <= 16
        assert all(t not in tok.special for t in real[1:-1])
    assert torch.equal(batch["english_input_ids"], plain["english_input_ids"])  # English untouched


def test_epoch_callback_sets_the_epoch(tiny):
    col, _ = _collator(tiny, noise_p=1.0)
    cb = epoch_callback(col)
    for epoch, expected in ((0.0, 0), (1.0, 1), (1.5, 1), (2.9999999, 3), (None, 0)):
        cb.on_epoch_begin(None, SimpleNamespace(epoch=epoch), None)
        assert col.epoch == expected


# ---------------------------------------------------------------------------- runs


@pytest.mark.parametrize("loss", ["ot", "mse"])
def test_runs_with_every_robustness_option(tiny, tmp_path, loss):
    """Two steps with noise, WordPiece dropout, the consistency and self-teaching terms
    (and for OT the co-occurrence cost): the run finishes and reports the new terms."""
    events = []
    kw = dict(noise_p=1.0, noise_max_cer=0.2, noise_kind="random_char,keyboard",
              subword_dropout=0.2, consistency_weight=0.5, self_teach_weight=1.0)
    if loss == "ot":
        kw.update(cooc_weight=0.3)
    cfg = distill_cfg(tiny, loss=loss, max_steps=2, evaluate=False, probe_every=0, **kw)
    res = run_distillation(cfg, tmp_path / loss, progress=events.append)
    assert res.status == "finished" and res.steps == 2
    comps = [e["components"] for e in events if e["kind"] == "step"]
    assert comps and {"consistency", "self_teach", "noisy_share"} <= set(comps[-1])
    assert comps[-1]["noisy_share"] > 0.5 and comps[-1]["consistency"] > 0
    assert ("ot" if loss == "ot" else "mse") in comps[-1]
    assert res.record["config"]["noise_p"] == 1.0


def test_mse_kd_takes_the_same_augmentation(tiny, tmp_path):
    """MSE-KD without the extra terms stays sentence-transformers' MSELoss, and still
    reads the perturbed foreign side through the collator."""
    from sentence_transformers.sentence_transformer.losses import MSELoss

    from optical_core.distill import models

    cfg = distill_cfg(tiny, loss="mse", max_steps=2, evaluate=False, probe_every=0,
                      noise_p=1.0, subword_dropout=0.3).validate()
    teacher, student = models.load_models(cfg)
    assert isinstance(models.build_loss(cfg, student, teacher), MSELoss)
    ds = models.build_dataset(cfg, models.load_pairs(cfg, "train", 8), teacher)
    assert ds.column_names == ["english", "non_english", "label", ROW_COLUMN]
    res = run_distillation(cfg, tmp_path / "mse")
    assert res.status == "finished" and res.steps == 2


def test_a_run_draws_each_sentence_anew_every_epoch(tiny, tmp_path, monkeypatch):
    """In a real run the collator sees epoch 0 for every row of the first epoch and epoch
    1 for every row of the second (the trainer builds an epoch's batches after
    ``on_epoch_begin``), so each reading of a sentence has its own seeded noise."""
    seen: list[tuple[int, list[int]]] = []
    original = AugmentingCollator.__call__

    def recording(self, features):
        seen.append((self.epoch, [int(f[ROW_COLUMN]) for f in features]))
        return original(self, features)

    monkeypatch.setattr(AugmentingCollator, "__call__", recording)
    cfg = distill_cfg(tiny, pairs=16, epochs=2, evaluate=False, probe_every=0, noise_p=1.0)
    res = run_distillation(cfg, tmp_path / "r")
    assert res.status == "finished" and res.steps == 4
    by_epoch: dict[int, list[int]] = {}
    for epoch, rows in seen:
        by_epoch.setdefault(epoch, []).extend(rows)
    assert sorted(by_epoch) == [0, 1]
    assert sorted(by_epoch[0]) == sorted(by_epoch[1]) == list(range(16))
