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
    # Alignment
    "½‖P₁ − P₂‖₁": "Mass moved between two plans: half the summed absolute difference of "
                   "their cells; 0 = the same plan, 1 = every token's mass goes elsewhere.",
    "row entropy": "How evenly a source token spreads its mass over the target tokens, "
                   "averaged over tokens: 0 = one partner each, 1 = spread over all of them.",
    "AER": "Alignment error rate against human gold links: 1 − (|A∩S| + |A∩P|) / (|A| + |S|) "
           "for predicted links A, sure S and possible P; 0 is perfect, lower is better.",
    "Jaccard": "Agreement of two link sets: links in both / links in either (0 … 1).",
    "OT threshold": "Links where the plan moves at least the threshold × a one-to-one share "
                    "of mass (P × max(n, m) ≥ threshold).",
    "argmax": "Links where two tokens are each other's most similar token (both directions "
              "agree), read off the similarity matrix.",
    "itermax": "SimAlign's argmax in rounds: after the first round, tokens still unlinked "
               "get a second chance among the remaining tokens.",
    "Pharaoh": "The plain-text link format of alignment tools: one line per sentence pair, "
               "links as 0-indexed source-target pairs 'i-j', possible links as 'ipj'.",
    "marginal error": "max(‖P𝟙 − a‖₁, ‖Pᵀ𝟙 − b‖₁): the mass the plan sends or receives in "
                      "the wrong amount; 0 once Sinkhorn has converged.",
    "Gibbs kernel": "exp(−C/ε), Sinkhorn's start: every pair of tokens gets mass by its cost "
                    "alone; the row and column scalings then fit the token weights.",
}


def help_for(term: str) -> str:
    """The one-line explanation of ``term`` (exactly as the page shows it)."""
    return GLOSSARY[term]
