"""The sidebar navigation: every page the app has gets an icon, so none sits out of line."""

from __future__ import annotations

from ui.nav import PAGE_ICONS, app_pages


def test_every_page_has_a_sidebar_icon():
    labels = [label for _, label in app_pages()]
    assert "Corpus" in labels and len(labels) >= 6
    missing = [label for label in labels if not PAGE_ICONS.get(label, "").startswith(":material/")]
    assert not missing, f"pages without a sidebar icon: {missing}"
