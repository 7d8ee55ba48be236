"""Seeded, Unicode-safe text noise with a target character error rate.

* :mod:`~optical_core.perturb.kinds`: the noise kinds, alphabets, keyboards, OCR
  confusions, and the :class:`~optical_core.perturb.kinds.Perturbation` record;
* :mod:`~optical_core.perturb.cer`: Levenshtein distance and CER;
* :mod:`~optical_core.perturb.text`: seeds, language guess, argument checks, units;
* :mod:`~optical_core.perturb.chars` / :mod:`~optical_core.perturb.words`: the kinds;
* :mod:`~optical_core.perturb.noise`: :func:`perturb`, :func:`compose`, :func:`perturb_many`.

The base layer: standard library only.
"""
