"""A plotly chart that stays mounted while its figure changes: the Alignment page's plan.

``st.plotly_chart`` hashes the figure into the element's identity (Streamlit 1.67, also
with a ``key``), so every ε step unmounts the plan chart and plotly.js draws it from
scratch (``purge`` + ``newPlot``, ~90 ms in Chromium for a 30 × 30 plan, plus React's
remount). :func:`live_plotly_chart` is a custom component (``components.v1``) whose
identity is its key alone: a new figure reaches the same iframe as a render event and is
drawn with ``Plotly.react``, which diffs it into the existing chart (docs/BENCHMARKS.md).

The iframe page (``ui/assets/live_plotly.html``) loads the plotly.js that ships with the
installed ``plotly`` package, so it works offline. Streamlit serves a component only from
one folder, so both files are copied once into ``$OPTICAL_CACHE_DIR/components/`` under a
name that changes with their contents.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit.components.v1 as components

from optical_core.caches import cache_root

PAGE = Path(__file__).with_name("assets") / "live_plotly.html"
#: The component's name; Streamlit prefixes it with this module's name.
NAME = "live_plotly"
_BUILD_LOCK = threading.Lock()


def plotly_js() -> Path:
    """The ``plotly.min.js`` bundled with the installed plotly package."""
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def asset_dir() -> Path:
    """The folder Streamlit serves the component from (created on first use): the iframe
    page and plotly.js, under ``$OPTICAL_CACHE_DIR/components/live_plotly-<hash>``.

    Sessions of one server (threads) and servers sharing a cache (processes) may ask at
    once: each builds its own temporary folder and renames it into place (atomic); a
    folder with ``index.html`` in it is complete, since that file is written last.
    """
    page = PAGE.read_bytes()
    tag = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:12]
    folder = cache_root() / "components" / f"{NAME}-{tag}"
    if (folder / "index.html").is_file():
        return folder
    with _BUILD_LOCK:
        if (folder / "index.html").is_file():
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            shutil.copyfile(plotly_js(), tmp / "plotly.min.js")
            (tmp / "index.html").write_bytes(page)
            tmp.replace(folder)
        except OSError:
            if not (folder / "index.html").is_file():  # not another process's doing
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def live_plotly_chart(fig: go.Figure, *, key: str, config: dict | None = None) -> None:
    """Draw ``fig`` in the chart named ``key``; the next call with the same key redraws the
    same chart in place (``Plotly.react``) instead of mounting a new one.

    Args:
        fig: the figure; its layout's ``height`` sets the iframe's height.
        key: the chart's identity on the page (and its widget key).
        config: plotly.js config (toolbar, image export), as for ``st.plotly_chart``.
    """
    # Declared per call: Streamlit registers a component only inside a script run, and
    # every AppTest / server session has its own registry.
    chart = components.declare_component(NAME, path=str(asset_dir()))
    chart(spec=pio.to_json(fig, validate=False), config=json.dumps(config or {}), key=key,
          default=None)


#: JavaScript expression for browser tests and benches: every drawn plotly chart div on the
#: page, those in the live charts' iframes (same origin) included.
PLOTLY_DIVS_JS = (
    "[document, ...Array.from(document.querySelectorAll('iframe'), f => {"
    " try { return f.contentDocument; } catch (e) { return null; } })]"
    ".filter(Boolean).flatMap(d => Array.from(d.querySelectorAll('.js-plotly-plot')))"
)
#: JavaScript function ``(kind) => div | null``: the drawn chart whose ``layout.meta.kind``
#: is ``kind`` ("plan", "cost", ...), wherever it is on the page.
FIND_FIGURE_JS = (
    f"(kind) => ({PLOTLY_DIVS_JS}).find(d => d.layout && d.layout.meta"
    " && d.layout.meta.kind === kind && d._fullData) || null"
)
