"""Tests of metadata cleaning: junk titles, fallbacks, unescaping, caps, first-wins."""

from __future__ import annotations

import pandas as pd
import pytest

from layerkd.data.clean import (
    build_items,
    cap_words,
    clean_text,
    details_text,
    join_text,
    junk_reason,
)

SPAN = '<span class="a-size-medium a-color-secondary"'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Canoe &amp; Kayak", "Canoe & Kayak"),
        ("Double &amp;amp; escaped", "Double & escaped"),
        ("D&eacute;cor &ndash; Kids", "Décor – Kids"),
        ("  lots \n of\t space  ", "lots of space"),
        ("<b>Bold</b> title", "Bold title"),
        (SPAN, ""),
        ("Vogue " + SPAN, "Vogue"),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_clean_text(raw: object, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (SPAN, "html"),
        ("<div></div>", "html"),
        ("", "missing"),
        ("   ", "missing"),
        (None, "missing"),
        ("!!! -- ...", "punctuation"),
        ("&amp; &quot;", "punctuation"),
        ("Vogue", None),
        ("5.0 Mustang &amp; Super Fords", None),
    ],
)
def test_junk_reason(raw: object, reason: str | None) -> None:
    assert junk_reason(raw) == reason


def test_cap_words_join_and_details() -> None:
    assert cap_words("a b c d", 2) == "a b"
    assert cap_words("a  b", 5) == "a  b"
    assert join_text(["First &amp; second", "", ["nested", None]]) == "First & second nested"
    details = {"Format:": "Print Magazine", "ASIN: ": "B000", "Publisher:": "Reason",
               "Shipping: ": "US only"}
    assert details_text(details) == "Format: Print Magazine; Publisher: Reason"


def _meta(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item_id", "title", "brand", "description", "details"])


def test_build_items_fallbacks_drops_and_first_wins() -> None:
    long_title = " ".join(f"w{i}" for i in range(30))
    meta = _meta([
        ("i1", "Good &amp; Title", "B", ["d"], {}),
        ("i1", "Second row loses", None, None, None),
        ("i2", SPAN, "Hearst", ["Country <i>living</i> ideas"], {}),
        ("i3", SPAN, "Hearst", [], {}),
        ("i4", "", None, ["Only a description"], None),
        ("i5", "???", "", [""], {"Publisher:": "Kalmbach", "ASIN:": "X"}),
        ("i6", SPAN, None, [], {"ASIN:": "only an id"}),
        ("i7", long_title, None, None, None),
        (None, "no id", None, None, None),
    ])
    items, stats = build_items(meta, title_max_words=5, text_max_words=8)
    got = {r.item_id: (r.title, r.text) for r in items.itertuples()}
    assert got == {
        "i1": ("Good & Title", "Good & Title"),
        "i2": ("Hearst: Country living ideas", "Hearst: Country living ideas"),
        "i3": ("Hearst", "Hearst"),
        "i4": ("Only a description", "Only a description"),
        "i5": ("Publisher: Kalmbach", "Publisher: Kalmbach"),
        "i7": ("w0 w1 w2 w3 w4", "w0 w1 w2 w3 w4"),
    }
    assert stats["meta_rows"] == 9
    assert stats["meta_rows_without_id"] == 1
    assert stats["meta_duplicate_ids"] == 1
    assert stats["titles_junk"] == 5
    assert stats["titles_junk_by_reason"] == {"html": 3, "missing": 1, "punctuation": 1}
    assert stats["titles_replaced_by_fallback"] == 4
    assert stats["fallback_by_source"] == {"brand": 1, "brand+description": 1,
                                           "description": 1, "details": 1}
    assert stats["items_dropped_no_text"] == 1
    assert stats["titles_ok"] == 2


def test_fallback_text_is_longer_than_fallback_title() -> None:
    desc = " ".join(f"d{i}" for i in range(20))
    items, _ = build_items(_meta([("i", SPAN, "Brand", [desc], None)]), title_max_words=3,
                           text_max_words=6)
    assert items.loc[0, "title"] == "Brand: d0 d1"
    assert items.loc[0, "text"] == "Brand: d0 d1 d2 d3 d4"
