"""Text for Markdown: one escape for every page that puts data (captions, tokens, method
names) into ``st.markdown`` or ``st.table`` cells, which render Markdown."""

from __future__ import annotations


def md_escape(text: str) -> str:
    """``text`` with every Markdown control character backslash-escaped, so it shows
    literally (a token ``*``, a method ``OT+MSE-KD``, a caption ending in ``.``)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|~" else ch for ch in text)
