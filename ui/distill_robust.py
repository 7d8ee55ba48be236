"""The Distillation form's robustness options: the recipe choice, the Robustness expander
(the fields of :class:`~optical_core.distill.config.DistillConfig`'s "Robustness options"),
and the note when a job's options do not go together (a run's non-default robustness
options are written by :func:`ui.run_summary.robust_summary`).

A recipe (:data:`~optical_core.distill.recipes.RECIPES`) *fills* the expander's widgets with
:func:`~optical_core.distill.recipes.recipe_options`, the merge the command line uses, and
what the user then changes wins, as an explicit flag beats ``--recipe``. The widgets thus
always hold the values to submit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from optical_core.distill.config import (
    COOC_MEASURES,
    KD_INPUTS,
    SELF_TEACH_ON,
    DistillConfig,
    DistillError,
    option_named,
)
from optical_core.distill.option_words import label_words
from optical_core.distill.recipes import RECIPES, ROBUST_FIELDS, recipe_options
from optical_core.perturb.kinds import NOISE_KINDS
from ui.distill import clamp_to, widget_range
from ui.run_summary import show_value

#: The recipe choice that presets nothing (the fields keep the form's defaults).
NO_RECIPE = "none"
RECIPE_KEY = "distill_recipe"

#: The label of each robustness field's widget: the field's ``label``
#: (:func:`~optical_core.distill.config.option`), as the CLI's help reads its ``help``.
LABELS: dict[str, str] = {f: option_named(f).label for f in ROBUST_FIELDS}
#: (min, max, step) of the numeric fields: DistillConfig's valid range, or less where more
#: makes no sense (a CER above 0.5 leaves little of the sentence; weights above 10 drown
#: the KD term).
BOUNDS: dict[str, tuple[float, float, float]] = {
    "noise_p": (0.0, 1.0, 0.05),
    "noise_max_cer": (0.0, 0.5, 0.01),
    "subword_dropout": (0.0, 0.5, 0.05),
    "consistency_weight": (0.0, 10.0, 0.1),
    "self_teach_weight": (0.0, 10.0, 0.1),
    "self_teach_temperature": (0.01, 10.0, 0.01),
    "cooc_weight": (0.0, 1.0, 0.05),
}


def _range(field: str) -> dict[str, float]:
    """The bounds and step of a numeric field's widget, as keywords."""
    return widget_range(BOUNDS[field])


def key(field: str) -> str:
    """The session-state key of a robustness field's widget."""
    return f"distill_robust_{field}"


def recipe_caption(recipe: str) -> str:
    """What ``recipe`` sets, read from its values (so a changed recipe describes itself)."""
    if recipe not in RECIPES:
        return "No preset: the robustness options below stay as set (all off by default)."
    parts = [f"{LABELS.get(f, f)} {show_value(v)}" for f, v in recipe_options(recipe, {}).items()]
    return f"**{recipe}** sets {', '.join(parts)}; any of them can still be changed below."


def _widget_value(field: str, value: Any) -> Any:
    """A field's value as its widget holds it: the noise kinds as a list of known kinds, a
    number clamped into the widget's range (a slider refuses a value outside it)."""
    if field == "noise_kind":
        try:
            return list(DistillConfig(noise_kind=str(value)).noise_kinds())
        except DistillError:  # an unknown kind in $OPTICAL_DISTILL_DEFAULTS: the default
            return list(DistillConfig().noise_kinds())
    if field in BOUNDS:
        return clamp_to(BOUNDS[field], value)
    return value


def fill(base: DistillConfig, recipe: str) -> None:
    """Set the widgets to ``base``'s robustness values with ``recipe``'s on top (none: the
    base values alone, which undoes an earlier recipe)."""
    values = {f: getattr(base, f) for f in ROBUST_FIELDS}
    values.update(recipe_options(recipe if recipe in RECIPES else None, {}))
    for f, v in values.items():
        st.session_state[key(f)] = _widget_value(f, v)


def _on_recipe(base: DistillConfig) -> None:
    fill(base, st.session_state[RECIPE_KEY])


def robustness_options(base: DistillConfig) -> dict[str, Any]:
    """The recipe choice and the Robustness expander; the robustness fields they set."""
    for f in ROBUST_FIELDS:  # first run of the tab: the form's defaults
        if key(f) not in st.session_state:
            st.session_state[key(f)] = _widget_value(f, getattr(base, f))
    recipes = [NO_RECIPE, *sorted(RECIPES)]
    recipe = st.selectbox(
        "Recipe", recipes, key=RECIPE_KEY, on_change=_on_recipe, args=(base,),
        help="A preset of the robustness options (`optical distill --recipe`). Picking one "
        "fills in the options below; what you then change there is what the job uses.")
    st.caption(recipe_caption(recipe))
    ss = st.session_state
    default = DistillConfig()
    changed = any(ss[key(f)] != _widget_value(f, getattr(default, f)) for f in ROBUST_FIELDS)
    with st.expander("Robustness", expanded=changed):
        st.caption("What the student reads of the foreign side during training, whatever the "
                   "loss; the teacher's English side stays clean. All off by default.")
        r1, r2, r3 = st.columns(3)
        r1.slider(LABELS["noise_p"], **_range("noise_p"), key=key("noise_p"),
                  help="Share of the training sentences whose foreign side is perturbed on "
                  "the fly (0 = off). Each epoch draws anew, seeded by seed, epoch and row.")
        no_noise = ss[key("noise_p")] == 0
        r2.slider(LABELS["noise_max_cer"], **_range("noise_max_cer"), key=key("noise_max_cer"),
                  disabled=no_noise,
                  help="A perturbed sentence's character error rate is drawn uniformly from "
                  "[0, this]; the evaluation's noise spans 0–0.2.")
        r3.multiselect(LABELS["noise_kind"], list(NOISE_KINDS), key=key("noise_kind"),
                       disabled=no_noise,
                       help="Each perturbed sentence draws one of these. random_char: random "
                       "characters deleted, substituted or inserted; keyboard: typos on an "
                       "adjacent key of the language's keyboard.\n\n"
                       + "\n".join(f"- {k}: {v}" for k, v in NOISE_KINDS.items()))
        r4, r5, r6 = st.columns(3)
        r4.slider(LABELS["subword_dropout"], **_range("subword_dropout"),
                  key=key("subword_dropout"),
                  help="WordPiece dropout on the foreign side (0 = off): each longest match "
                  "is, with this probability, replaced by a shorter in-vocabulary piece, so "
                  "the student sees the odd segmentations that typos cause.")
        r5.number_input(LABELS["consistency_weight"], **_range("consistency_weight"),
                        key=key("consistency_weight"),
                        help="Weight of the consistency term: OT of the student's tokens of "
                        "the perturbed sentence onto its own (detached) clean tokens of the "
                        "same sentence (0 = off). Needs noise or subword dropout.")
        r6.number_input(LABELS["self_teach_weight"], **_range("self_teach_weight"),
                        key=key("self_teach_weight"),
                        help="Weight of Self-Teaching (Zhuang & Zuccon, SIGIR 2022): "
                        "KL(clean ‖ noisy) of the in-batch score distributions against the "
                        "teacher's English sentence embeddings (0 = off). Needs noise or "
                        "subword dropout.")
        r7, r8, r9 = st.columns(3)
        r7.radio(LABELS["kd_input"], KD_INPUTS, key=key("kd_input"), horizontal=True,
                 help="What the KD terms (OT, MSE) read of an augmented sentence. noisy: the "
                 "perturbed one (noisy-student KD). clean: the clean one; the perturbed copy "
                 "then feeds only the consistency and Self-Teaching terms.")
        r8.slider(LABELS["cooc_weight"], **_range("cooc_weight"), key=key("cooc_weight"),
                  help="Share λ of the bitext co-occurrence cost in the OT plan's cost: "
                  "C = (1 − λ)(1 − cos) + λ·C_cooc, C_cooc from −NPMI or Dice of the "
                  "training pairs (0 = off). OT losses only.")
        r9.radio(LABELS["cooc_measure"], COOC_MEASURES, key=key("cooc_measure"),
                 horizontal=True, disabled=ss[key("cooc_weight")] == 0,
                 help="npmi: normalised pointwise mutual information; dice: the Dice "
                 "coefficient of the two words' sentence counts.")
        no_st = ss[key("self_teach_weight")] == 0
        r10, r11, _ = st.columns(3)
        r10.radio(LABELS["self_teach_on"], SELF_TEACH_ON, key=key("self_teach_on"),
                  horizontal=True, disabled=no_st, help=option_named("self_teach_on").help)
        r11.number_input(LABELS["self_teach_temperature"], **_range("self_teach_temperature"),
                         key=key("self_teach_temperature"), disabled=no_st,
                         help=option_named("self_teach_temperature").help)
    fields = {f: ss[key(f)] for f in ROBUST_FIELDS}
    fields["noise_kind"] = ",".join(fields["noise_kind"])
    for f in BOUNDS:
        fields[f] = float(fields[f])
    return fields


def config_problem(base: DistillConfig, fields: Mapping[str, Any]) -> str | None:
    """Why the config the form would submit cannot train (``DistillConfig.validate``'s
    message), or ``None``."""
    try:
        DistillConfig.from_dict({**base.to_dict(), **fields}).validate()
    except (DistillError, TypeError, ValueError) as exc:
        return label_words(str(exc))  # the form's labels, not the field names
    return None
