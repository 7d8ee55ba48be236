"""The type and range of every key of a grid config (:class:`~optical_core.experiments.config.
GridConfig`), checked before any other check reads a value.

TOML gives whatever the user typed: a string where a list goes (``methods = "ot"`` would be
read letter by letter), a list where a number goes, a table where a scalar goes, ``nan``.
:func:`field_problem` names the first such key the way the TOML file spells it
(``pairs``, ``lr.ot``, ``seeds_of.ot``), says what it takes and shows the value, so no
later check (or the grid itself, hours later) meets a value of the wrong kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Kind:
    """What one value takes: a test and how a message says it (``an integer >= 1``)."""

    holds: Callable[[Any], bool]
    words: str


STR = Kind(lambda v: isinstance(v, str), "a string")
BOOL = Kind(lambda v: isinstance(v, bool), "true or false")
COUNT = Kind(lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: all)")
SIZE = Kind(lambda v: _is_int(v) and v >= 1, "an integer >= 1")
SEED = Kind(lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2^32)")
RATE = Kind(lambda v: _is_number(v) and v > 0, "a finite number > 0")
CER = Kind(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
N_BOOT = Kind(lambda v: _is_int(v) and 100 <= v <= 100_000, "an integer in [100, 100,000]")

#: Scalar keys: ``key → kind``.
SCALARS: dict[str, Kind] = {
    "name": STR, "tune_lang": STR, "tune_split": STR, "stat_test": STR, "gold": BOOL,
    "tune_per_pairs": BOOL,
    "tune_pairs": COUNT, "noise_seed": SEED, "query_limit": COUNT, "gold_limit": COUNT,
    "n_boot": N_BOOT,
}
#: List keys: ``key → (kind of each item, whether checked here to be distinct)``; the
#: lists of names (methods, scorers, ...) are checked for repeats with their choices.
LISTS: dict[str, tuple[Kind, bool]] = {
    "methods": (STR, False), "langs": (STR, True), "pairs": (SIZE, True),
    "seeds": (SEED, True), "tune_lrs": (RATE, True), "tune_schedules": (STR, False),
    "splits": (STR, True), "noise_kinds": (STR, True), "cer_levels": (CER, True),
    "doc_encoders": (STR, False), "scorers": (STR, False),
}
#: Table keys: ``key → kind of each value`` (a list kind: a list of distinct such items).
TABLES: dict[str, tuple[Kind, bool]] = {
    "lr": (RATE, False), "seeds_of": (SEED, True), "baselines": (STR, False),
}


def _list_problem(key: str, value: Any, kind: Kind, distinct: bool = True) -> str | None:
    if not isinstance(value, list):
        return f"{key} must be a list in brackets, each item {kind.words}, got {value!r}"
    bad = [v for v in value if not kind.holds(v)]
    if bad:
        return f"{key}: every item must be {kind.words}, got {bad[0]!r}"
    if not distinct:
        return None
    # bool is a subclass of int: compare (type, value) so that [1, true] is not "twice"
    seen = [(type(v), v) for v in value]
    twice = sorted({repr(v) for (t, v) in seen if seen.count((t, v)) > 1})
    if twice:
        return f"{key} lists {', '.join(twice)} twice; list each once"
    return None


def field_problem(values: dict[str, Any]) -> str | None:
    """The first key of a grid config (``dataclasses.asdict`` of it, or the TOML's
    ``[grid]`` table) whose value has the wrong type or range, as one line naming the key,
    what it takes and the value; ``None`` when every key holds.

    ``distill`` and ``variants`` are checked as tables here; their options are checked by
    :meth:`~optical_core.distill.config.DistillConfig.validate`.
    """
    for key, kind in SCALARS.items():
        if key in values and not kind.holds(values[key]):
            return f"{key} must be {kind.words}, got {values[key]!r}"
    for key, (kind, distinct) in LISTS.items():
        if key in values and (problem := _list_problem(key, values[key], kind, distinct)):
            return problem
    for key, (kind, listed) in TABLES.items():
        table = values.get(key, {})
        if not isinstance(table, dict):
            return f"{key} must be a table ({key}.<method> = ...), got {table!r}"
        for name, value in table.items():
            if listed:  # distinct seeds per method: checked with the method (seeds_of)
                problem = _list_problem(f"{key}.{name}", value, kind, distinct=False)
            else:
                problem = None if kind.holds(value) else (
                    f"{key}.{name} must be {kind.words}, got {value!r}")
            if problem:
                return problem
    for key in ("distill", "variants"):
        if not isinstance(values.get(key, {}), dict):
            return f"[{key}] must be a table, got {values[key]!r}"
    return None
