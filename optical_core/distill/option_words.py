"""A distillation message in the words of where the user set the options: the CLI's flags
(``--noise-p``), the Distillation page's labels (``'Noisy share'``); the grid's TOML keys
are the serialized names the messages are written with, so it keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from optical_core.distill.config import Option, options


def in_words(message: str, word: Callable[[Option], str]) -> str:
    """``message`` with each option's serialized name replaced by ``word(option)``.

    A name with an underscore (``noise_p``, ``max_steps``) is replaced wherever it stands as
    a whole word; a one-word name (``epochs``, ``lr``, ``seed``) only where it opens the
    message as its subject (``epochs must ...``, ``lang: ...``), since the same word also
    appears in prose (``the lr schedule``).

    Args:
        message: a :class:`~optical_core.distill.config.DistillError`'s text.
        word: how the caller names an option, e.g. ``lambda o: o.flag``.
    """
    for opt in sorted(options(), key=lambda o: -len(o.name)):
        name = re.escape(opt.name)
        pattern = (rf"(?<![\w-]){name}(?![\w-])" if "_" in opt.name
                   else rf"^{name}(?= must\b|:)")
        message = re.sub(pattern, lambda _m, o=opt: word(o), message)
    return message


def flag_words(message: str) -> str:
    """``message`` with the CLI's flags (``--epochs``) for the options it names."""
    return in_words(message, lambda o: o.flag)


def label_words(message: str) -> str:
    """``message`` with the Distillation page's labels (``'Epochs'``) for the options."""
    return in_words(message, lambda o: f"'{o.label}'")
