"""The demo set packaged with the library (``optical_core/demo/demo_pairs.jsonl``): 24
hand-written scenes in English with German, French and Czech translations and English
paraphrases, some with hand-made gold links. The app works on it without any data folder.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from importlib import resources

from optical_core.data import WORD_RE, check_name
from optical_core.gold import GoldPair

#: The demo set's target languages (``en-para``: English paraphrases).
DEMO_LANGS: tuple[str, ...] = ("de", "fr", "cs", "en-para")


@dataclass
class DemoPair:
    """A hand-written caption pair of the packaged demo set.

    ``src`` is English; ``tgt`` is German, French, Czech or (``lang == "en-para"``) an
    English paraphrase. Pairs of different languages with the same ``scene`` describe the
    same picture, so the set doubles as a tiny retrieval corpus. When the pair has gold
    links, ``src_tokens`` / ``tgt_tokens`` are the tokens they index (those of
    :func:`simple_tokenize`), links are 0-indexed ``(src, tgt)`` and ``possible`` includes
    ``sure``; otherwise these fields are ``None``.
    """

    id: str
    lang: str
    scene: str
    src: str
    tgt: str
    src_tokens: list[str] | None = None
    tgt_tokens: list[str] | None = None
    sure: set[tuple[int, int]] | None = None
    possible: set[tuple[int, int]] | None = None

    @property
    def has_gold(self) -> bool:
        return self.sure is not None

    def to_gold(self) -> GoldPair:
        """This pair as a :class:`GoldPair` (``ValueError`` if it has no gold links)."""
        if self.sure is None or self.possible is None:
            raise ValueError(f"demo pair {self.id} has no gold links")
        assert self.src_tokens is not None and self.tgt_tokens is not None
        return GoldPair(list(self.src_tokens), list(self.tgt_tokens), set(self.sure),
                        set(self.possible))


def simple_tokenize(text: str) -> list[str]:
    """The demo set's tokenisation: words (letters/digits, inner ``'`` or ``-`` kept) and
    single punctuation marks, e.g. ``"l'étang."`` → ``["l'étang", "."]``."""
    return WORD_RE.findall(text)


def read_links(raw: object, where: str) -> set[tuple[int, int]]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: links must be a list of [i, j]")
    out: set[tuple[int, int]] = set()
    for link in raw:
        if (
            not isinstance(link, list)
            or len(link) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in link)
        ):
            raise ValueError(f"{where}: bad link {link!r}")
        out.add((link[0], link[1]))
    return out


def load_demo(lang: str | None = None) -> list[DemoPair]:
    """The packaged demo pairs (``optical_core/demo/demo_pairs.jsonl``), optionally one language.

    ``lang`` is one of :data:`DEMO_LANGS` (``de``, ``fr``, ``cs``, ``en-para``) or ``None``
    for all. Gold links are checked against the stored tokens.
    """
    if lang is not None:
        check_name("demo language", lang, DEMO_LANGS)
    text = resources.files("optical_core").joinpath("demo").joinpath("demo_pairs.jsonl").read_text(
        encoding="utf-8"
    )
    pairs: list[DemoPair] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"demo_pairs.jsonl:{lineno}"
        rec = json.loads(line)
        pair = DemoPair(
            id=rec["id"],
            lang=rec["lang"],
            scene=rec["scene"],
            src=unicodedata.normalize("NFC", rec["src"]),
            tgt=unicodedata.normalize("NFC", rec["tgt"]),
        )
        if "sure" in rec:
            pair.src_tokens = list(rec["src_tokens"])
            pair.tgt_tokens = list(rec["tgt_tokens"])
            pair.sure = read_links(rec["sure"], where)
            pair.possible = read_links(rec.get("possible", []), where) | pair.sure
            n, m = len(pair.src_tokens), len(pair.tgt_tokens)
            bad = [(i, j) for i, j in pair.possible if not (0 <= i < n and 0 <= j < m)]
            if bad:
                raise ValueError(f"{where}: links {sorted(bad)} out of range ({n} x {m} tokens)")
        if lang is None or pair.lang == lang:
            pairs.append(pair)
    return pairs
