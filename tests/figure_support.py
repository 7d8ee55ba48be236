"""The plotly figures an AppTest run drew: ``st.plotly_chart``'s and the live charts'
(``ui.live_chart``, a custom component whose figure travels in its JSON arguments)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from ui.live_chart import NAME as LIVE_CHART


def live_charts(at: AppTest) -> list:
    """The live chart elements on the page (Streamlit prefixes the component's name with
    its module's)."""
    return [el for el in at.get("component_instance")
            if el.proto.component_name.rsplit(".", 1)[-1] == LIVE_CHART]


def figure_specs(at: AppTest) -> list[dict]:
    """Every figure on the page as plotly JSON, in page order within each kind of element."""
    return ([json.loads(el.proto.spec) for el in at.get("plotly_chart")]
            + [json.loads(json.loads(el.proto.json_args)["spec"]) for el in live_charts(at)])


def figure_kinds(at: AppTest) -> list[str | None]:
    """``layout.meta.kind`` of each figure ("plan", "cost", "diff", ...)."""
    return [s["layout"].get("meta", {}).get("kind") for s in figure_specs(at)]


def figure_spec(at: AppTest, kind: str) -> dict:
    """The first figure whose ``layout.meta.kind`` is ``kind``."""
    for spec in figure_specs(at):
        if spec["layout"].get("meta", {}).get("kind") == kind:
            return spec
    raise AssertionError(f"no {kind} chart on the page")
