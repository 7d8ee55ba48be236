"""One table of every symbol, metric and method name the pages show, each with a one-line
explanation: the help tooltips of every page read it, so a term is explained the same way
wherever it appears.

Pages call :func:`help_for` for a widget's ``help=`` or a column's ``help``; a term that is
not in :data:`GLOSSARY` is a ``KeyError`` (a test holds every page's terms against it), so a
new word on a page comes with its explanation.
"""

from __future__ import annotations

#: term as the page shows it → one line a newcomer can read. Grouped by where it first
#: appears; the pages share the whole table.
GLOSSARY: dict[str, str] = {
    # Optimal transport
    "ε": "Entropic regularisation of Sinkhorn: small ε gives a sharp plan close to the exact "
         "one, large ε spreads each token's mass over many tokens.",
    "−⟨P, C⟩": "Minus the transport cost: the Frobenius inner product of the plan P and the "
               "cost C (Σᵢⱼ Pᵢⱼ Cᵢⱼ), negated so that higher means a better match.",
    # Retrieval metrics
    "MRR@10": "Mean reciprocal rank over the first 10 results: 1 when the relevant caption "
              "is first, ½ when second, …, 0 when it is not in the top 10; shown ×100.",
}


def help_for(term: str) -> str:
    """The one-line explanation of ``term`` (exactly as the page shows it)."""
    return GLOSSARY[term]
