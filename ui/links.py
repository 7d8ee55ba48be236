"""Shareable views: a page's main state as URL query parameters, and back.

No Streamlit here. A page describes its view as :class:`Param`\\ s (the name in the URL,
the widget key, what values are allowed); :func:`view_params` turns the widget values into
query parameters for a link, and :func:`parse_params` turns a link's query parameters back
into widget values. A link is text anyone can type, so :func:`parse_params` never raises:
an unknown parameter, a value that is not a number, NaN, ±inf, out of range, an option
that does not exist or a text over :data:`MAX_TEXT` characters is left at its default,
and a note (Markdown, with the offending value escaped) says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optical_core import alignment as al
from optical_core import data as D
from optical_core.ot.config import SOLVERS
from optical_core.ot.costs import METRICS
from optical_core.pairs.align import LEVELS, WEIGHTINGS
from optical_core.perturb.kinds import NOISE_KINDS
from optical_core.perturb.resolve import NOISE_ALIASES
from optical_core.retrieval.corpus import RETRIEVAL_SPLITS
from optical_core.retrieval.scorers import SCORERS
from ui.pair_summary import EPS_OPTIONS, TAU_OPTIONS

#: Longest text a link may carry (characters); longer texts are left out of a link.
MAX_TEXT = 2000
#: How much of a rejected value a note quotes.
QUOTE_CHARS = 40
#: Notes name at most this many unknown parameters.
MAX_UNKNOWN = 5

_INT_RE = re.compile(r"^\s*[+-]?[0-9]{1,15}\s*$")
_FLOAT_RE = re.compile(r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


class LinkValueError(ValueError):
    """A query parameter value that a page cannot use; the message says why."""


def quote(raw: object, limit: int = QUOTE_CHARS) -> str:
    """``raw`` as safe Markdown: printable characters only, cut at ``limit``, every ASCII
    punctuation mark escaped (no link, emphasis, HTML, LaTeX or Streamlit directive
    survives)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(raw))
    cut = len(text) > limit
    text = text[:limit]
    out = "".join(f"\\{ch}" if ch in _PUNCT else ch for ch in text)
    return f"“{out}{'…' if cut else ''}”"


def _number(x: float) -> str:
    """A float as a link shows it: ``0.05``, ``1``, ``0.15`` (no float noise)."""
    return f"{x:.10g}"


def _non_finite(raw: str) -> bool:
    """``raw`` is "nan", "inf", "-Infinity" and the like."""
    try:
        return not math.isfinite(float(raw))
    except ValueError:
        return False


@dataclass(frozen=True)
class Param:
    """One part of a page's view.

    Attributes:
        name: the query parameter's name.
        key: the session-state key of the widget it sets.
        label: what a note calls it (e.g. ``"ε"``).
        kind: ``"choice"``, ``"number"``, ``"int"``, ``"text"`` or ``"flag"``.
        default: the value used when the link's value is rejected (``None``: leave the
            widget as it is).
        options: the allowed values of a ``choice`` (widget values), or of a ``number``
            drawn as a select slider (a value between two options snaps to the nearer one).
        names: URL names of ``choice`` options that differ from the widget value.
        low, high: bounds of a ``number`` or ``int`` (inclusive).
        step: a ``number`` on a slider snaps to ``low + k * step``.
        max_len: the longest ``text``.
        when: ``(key, value)``: the parameter is part of the view only while the widget
            ``key`` holds ``value`` (e.g. the typed texts only for a typed pair).
    """

    name: str
    key: str
    label: str
    kind: str = "choice"
    default: Any = None
    options: tuple[Any, ...] = ()
    names: Mapping[Any, str] = field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    step: float | None = None
    max_len: int = MAX_TEXT
    when: tuple[str, Any] | None = None

    # ------------------------------------------------------------------ to the URL

    def format(self, value: Any) -> str:
        """``value`` (a valid widget value) as the link writes it."""
        if self.kind == "choice":
            return self.names.get(value, str(value))
        if self.kind == "flag":
            return "true" if value else "false"
        if self.kind == "int":
            return str(int(value))
        if self.kind == "number":
            return _number(float(value))
        return str(value)

    # ---------------------------------------------------------------- from the URL

    def parse(self, raw: str) -> tuple[Any, str | None]:
        """The widget value a link's ``raw`` value asks for, and a note when it had to be
        adjusted (snapped to the slider).

        Raises:
            LinkValueError: the value cannot be used; the message says why.
        """
        if not isinstance(raw, str):
            raise LinkValueError("is not text")
        if self.kind == "text":
            if len(raw) > self.max_len:
                raise LinkValueError(f"is too long ({len(raw):,} characters; a link may carry "
                                     f"{self.max_len:,})")
            return raw, None
        if len(raw) > 100:
            raise LinkValueError("is too long")
        if self.kind == "choice":
            return self._choice(raw), None
        if self.kind == "flag":
            low = raw.strip().lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE, None
            raise LinkValueError("is neither true nor false")
        if self.kind == "int":
            if not _INT_RE.match(raw):
                raise LinkValueError("is not a whole number")
            value = int(raw)
            self._check_range(value)
            if self.step and self.low is not None:
                snapped = int(self.low + round((value - self.low) / self.step) * self.step)
                snapped = min(snapped, int(self.high)) if self.high is not None else snapped
                if snapped != value:
                    return snapped, (f"The link's {self.label} = {quote(raw)} is not a value "
                                     f"of the slider; using the nearest one, {snapped}.")
            return value, None
        return self._float(raw)

    def _choice(self, raw: str) -> Any:
        wanted = raw.strip().lower()
        for option in self.options:
            if wanted in (str(option).lower(), self.names.get(option, str(option)).lower()):
                return option
        shown = ", ".join(self.names.get(o, str(o)) for o in self.options[:8])
        more = f", … ({len(self.options)} in all)" if len(self.options) > 8 else ""
        raise LinkValueError(f"is not one of {shown}{more}")

    def _check_range(self, value: float) -> None:
        low = self.low if self.low is not None else (min(self.options) if self.options else None)
        high = self.high if self.high is not None else (max(self.options) if self.options else None)
        if (low is not None and value < low - 1e-12) or (high is not None and value > high + 1e-12):
            raise LinkValueError(f"is out of range ({_number(low)} … {_number(high)})")

    def _float(self, raw: str) -> tuple[float, str | None]:
        if not _FLOAT_RE.match(raw):  # ASCII digits only: no "٣", "1_0" or "0x10"
            raise LinkValueError("is not a finite number" if _non_finite(raw)
                                 else "is not a number")
        value = float(raw)
        if not math.isfinite(value):
            raise LinkValueError("is not a finite number")
        self._check_range(value)
        if self.options:
            snapped = min(self.options, key=lambda o: (abs(o - value), o))
        elif self.step:
            base = self.low or 0.0
            snapped = round(base + round((value - base) / self.step) * self.step, 10)
            snapped = min(max(snapped, self.low), self.high) if self.low is not None else snapped
        else:
            snapped = value
        note = None
        if not math.isclose(snapped, value, rel_tol=1e-9, abs_tol=1e-12):
            note = (f"The link's {self.label} = {quote(raw)} is not a value of the slider; "
                    f"using the nearest one, {_number(snapped)}.")
        return snapped, note


@dataclass
class Restored:
    """What a link asks for.

    Attributes:
        values: widget key → value, for the parameters that could be used, and the
            default of those that could not (when they have one).
        notes: one Markdown sentence per parameter that was rejected or adjusted.
    """

    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_params(params: Mapping[str, str], spec: Sequence[Param],
                 ignore: Iterable[str] = ()) -> Restored:
    """The widget values a link's query parameters ask for. Never raises.

    Args:
        params: query parameter name → value (the last one, for a repeated name).
        spec: the page's view.
        ignore: names some other part of the page reads (e.g. ``model``): not reported.
    """
    by_name = {p.name: p for p in spec}
    skip = set(ignore)
    out = Restored()
    unknown = []
    for name, raw in params.items():
        if name in skip:
            continue
        param = by_name.get(name)
        if param is None:
            unknown.append(name)
            continue
        try:
            value, note = param.parse(raw)
        except LinkValueError as exc:
            fallback = ("ignored" if param.default is None
                        else f"using the default {quote(param.format(param.default))}")
            out.notes.append(link_note(param.label, raw, str(exc), fallback))
            if param.default is not None:
                out.values[param.key] = param.default
            continue
        out.values[param.key] = value
        if note:
            out.notes.append(note)
    if unknown:
        names = ", ".join(quote(n) for n in unknown[:MAX_UNKNOWN])
        more = f" and {len(unknown) - MAX_UNKNOWN} more" if len(unknown) > MAX_UNKNOWN else ""
        out.notes.append(f"This page does not know the link's parameter"
                         f"{'s' if len(unknown) > 1 else ''} {names}{more}; ignored.")
    return out


def link_note(label: str, raw: object, why: str, fallback: str = "ignored") -> str:
    """The one note for a link's value a page cannot use, whatever part of the page reads
    it (:func:`parse_params`, the model picker): ``The link's ε = “abc” is not a number;
    ignored.`` — ``why`` says what is wrong, ``fallback`` what the page does instead."""
    return f"The link's {label} = {quote(raw)} {why.strip().rstrip('.')}; {fallback}."


def view_params(state: Mapping[str, Any],
                spec: Sequence[Param]) -> tuple[dict[str, str], list[str]]:
    """The query parameters of the view that ``state`` (widget key → value) shows, and a
    note for each value a link cannot carry (a text over its ``max_len``)."""
    params: dict[str, str] = {}
    notes: list[str] = []
    for p in spec:
        if p.when is not None and state.get(p.when[0]) != p.when[1]:
            continue
        value = state.get(p.key)
        if value is None:
            continue
        if p.kind == "text" and len(str(value)) > p.max_len:
            notes.append(f"The {p.label} is too long for a link ({len(str(value)):,} characters; "
                         f"at most {p.max_len:,}): the link leaves it out.")
            continue
        try:
            p.parse(p.format(value))
        except (LinkValueError, TypeError, ValueError):
            continue  # a value no link could restore (a stale widget value): leave it out
        params[p.name] = p.format(value)
    return params, notes


# --------------------------------------------------------------------- the pages' views


def alignment_view(defaults: Mapping[str, Any], demo_ids: Sequence[str]) -> list[Param]:
    """The Alignment page's view: the pair (typed texts, a demo pair, a Multi30k line or a
    gold sentence), the transport problem and the link method.

    Args:
        defaults: the page's widget defaults (key → value).
        demo_ids: the demo pairs' ids, in the order of the demo set (``demo=de-03``).
    """
    d = defaults.get
    pair = "al_source"
    return [
        Param("pair", pair, "sentence pair", default=d(pair),
              options=("free", "demo", "multi30k", "gold"), names={"free": "typed"}),
        Param("src", "al_src", "source text", "text", d("al_src"), when=(pair, "free")),
        Param("tgt", "al_tgt", "target text", "text", d("al_tgt"), when=(pair, "free")),
        Param("demo", "al_demo", "demo pair", options=tuple(range(len(demo_ids))),
              names=dict(enumerate(demo_ids)), when=(pair, "demo")),
        Param("split", "al_m_split", "Multi30k split", options=D.SPLITS, when=(pair, "multi30k")),
        Param("lang", "al_m_lang", "language", options=("de", "fr", "cs"),
              when=(pair, "multi30k")),
        Param("line", "al_m_line", "Multi30k line", "int", low=1, high=1_000_000,
              when=(pair, "multi30k")),
        Param("gold", "al_g_pair", "gold set", options=D.GOLD_PAIRS, when=(pair, "gold")),
        Param("sentence", "al_g_line", "gold sentence", "int", low=1, high=1_000_000,
              when=(pair, "gold")),
        Param("cost", "al_metric", "cost", default=d("al_metric"), options=METRICS),
        Param("solver", "al_solver", "solver", default=d("al_solver"), options=SOLVERS),
        Param("eps", "al_eps", "ε", "number", d("al_eps"), options=EPS_OPTIONS),
        Param("tau", "al_tau", "τ", "number", d("al_tau"), options=TAU_OPTIONS),
        Param("mass", "al_mass", "transported mass", "number", d("al_mass"), low=0.1, high=1.0,
              step=0.05),
        Param("weights", "al_weighting", "token weights", default=d("al_weighting"),
              options=WEIGHTINGS),
        Param("tokens", "al_level", "token level", default=d("al_level"), options=LEVELS),
        Param("link", "al_link", "link method", default=d("al_link"), options=al.LINK_METHODS),
        Param("threshold", "al_threshold", "OT threshold", "number", d("al_threshold"),
              low=0.05, high=1.0, step=0.05),
        # Only while on: a distilled run's before/after view (the toggle is drawn for runs).
        Param("before", "al_before", "before-distillation toggle", "flag",
              when=("al_before", True)),
    ]


#: The Retrieval page's noise options: the alias ``typo``, then every kind.
NOISE_OPTIONS = (*NOISE_ALIASES, *NOISE_KINDS)
#: The Retrieval page's ε options (OT rerank).
RETRIEVAL_EPS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


def retrieval_view(defaults: Mapping[str, Any], max_chars: int) -> list[Param]:
    """The Retrieval page's view: corpus split, query language, the query (a test-set
    index or a typed text of at most ``max_chars``), its noise and the scorer."""
    d = defaults.get
    source = "ret_source"
    return [
        Param("split", "ret_split", "split", default=d("ret_split"), options=RETRIEVAL_SPLITS),
        Param("lang", "ret_lang", "query language", default=d("ret_lang"),
              options=("de", "fr", "cs", "en")),
        Param("query", source, "query source", default=d(source), options=("test set", "typed"),
              names={"test set": "test"}),
        Param("q", "ret_qidx", "query index", "int", d("ret_qidx"), low=0, high=1_000_000,
              when=(source, "test set")),
        Param("text", "ret_typed", "query text", "text", d("ret_typed"), max_len=max_chars,
              when=(source, "typed")),
        Param("noise", "ret_kind", "noise kind", default=d("ret_kind"), options=NOISE_OPTIONS),
        Param("cer", "ret_cer", "noise level (CER %)", "int", d("ret_cer"), low=0, high=30),
        Param("seed", "ret_seed", "noise seed", "int", d("ret_seed"), low=0, high=2**31 - 1),
        Param("scorer", "ret_scorer", "scorer", default=d("ret_scorer"), options=SCORERS),
        Param("k", "ret_k", "rerank depth", "int", d("ret_k"), low=10, high=50, step=5,
              when=("ret_scorer", "ot")),
        Param("eps", "ret_eps", "ε", "number", d("ret_eps"), options=RETRIEVAL_EPS,
              when=("ret_scorer", "ot")),
    ]
