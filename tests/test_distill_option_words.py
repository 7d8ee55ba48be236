"""A distillation message in the words of where the options were set: the CLI's flags, the
Distillation page's labels (the grid's TOML keys are the names the messages use)."""

from __future__ import annotations

import pytest

from optical_core.distill.config import DistillConfig, DistillError, option_named
from optical_core.distill.option_words import flag_words, label_words


@pytest.mark.parametrize("message, flags, labels", [
    ("epochs must be > 0 (or give max_steps > 0)",
     "--epochs must be > 0 (or give --max-steps > 0)",
     "'Epochs' must be > 0 (or give 'Max steps' > 0)"),
    ("noise_kind: unknown noise kind 'x'", "--noise-kind: unknown noise kind 'x'",
     "'Noise kinds': unknown noise kind 'x'"),
    # a one-word name inside prose stays prose
    ("unknown lr schedule 'step'", "unknown lr schedule 'step'", "unknown lr schedule 'step'"),
    ("lr must be > 0 and finite, got 0", "--lr must be > 0 and finite, got 0",
     "'Learning rate' must be > 0 and finite, got 0"),
])
def test_messages_take_the_flags_or_the_labels(message, flags, labels):
    assert flag_words(message) == flags
    assert label_words(message) == labels


def test_every_range_message_of_validate_names_the_flag():
    """Each option out of range: the CLI's wording starts with its flag."""
    for name, value in [("batch_size", 0), ("noise_p", 2.0), ("max_tokens", 4),
                        ("epsilon", -1.0), ("warmup_ratio", 1.5), ("save_steps", 0)]:
        with pytest.raises(DistillError) as err:
            DistillConfig.from_options(**{name: value}).validate()
        assert flag_words(str(err.value)).startswith(option_named(name).flag + " must"), name


def test_the_pages_config_problem_uses_the_labels():
    from ui.distill_robust import config_problem

    problem = config_problem(DistillConfig(), {"consistency_weight": 1.0})
    assert problem is not None
    assert f"'{option_named('noise_p').label}' > 0" in problem
    assert "noise_p" not in problem
