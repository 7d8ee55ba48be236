"""Noisy queries: the seeded noise of :mod:`optical_core.perturb` applied to a query set.
"""

from __future__ import annotations

from optical_core.perturb.kinds import LANGS as NOISE_LANGS
from optical_core.perturb.kinds import Perturbation
from optical_core.perturb.noise import perturb, perturb_levels
from optical_core.perturb.resolve import resolve_noise
from optical_core.perturb.text import derive_seed
from optical_core.retrieval.corpus import QuerySet

#: Noise levels (target CER) of the batch view and
#: :func:`optical_core.retrieval.evaluate.noise_curve`.
BATCH_LEVELS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)


def _noise_lang(lang: str | None) -> str | None:
    return lang if lang in NOISE_LANGS else None


def perturb_query(
    text: str, kind: str, cer: float, seed: int, lang: str | None = None,
    index: int | None = None, nested_top: float | None = None,
) -> Perturbation:
    """Noise for one query. With ``index`` (the query's position in its query set) the
    seed is ``derive_seed(seed, index)``, exactly as in :func:`perturb_queries`, so the
    page shows the same noisy query as the batch evaluation. With ``nested_top`` the edits
    are the first of one draw at that level (:func:`optical_core.perturb.noise.perturb_levels`):
    a higher ``cer`` keeps the edits of a lower one."""
    s = seed if index is None else derive_seed(seed, index)
    if nested_top is None:
        return perturb(text, resolve_noise(kind), cer, s, _noise_lang(lang))
    return perturb_levels(text, resolve_noise(kind), [cer, max(cer, nested_top)], s,
                          _noise_lang(lang))[0]


def perturb_queries(
    qset: QuerySet, kind: str, cer: float, seed: int = 0
) -> list[Perturbation]:
    """Noise for every query; query ``i`` of the full set always gets the same noise
    (seed ``derive_seed(seed, image index)``), whatever ``limit`` was used."""
    k = resolve_noise(kind)
    lang = _noise_lang(qset.lang)
    return [
        perturb(t, k, cer, derive_seed(seed, img), lang)
        for t, img in zip(qset.texts, qset.images)
    ]
