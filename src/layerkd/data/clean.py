"""Cleaning of item metadata into the text the LLM reads.

Rules, applied to every source:

* Text is HTML-unescaped (repeatedly, so ``&amp;amp;`` becomes ``&``), HTML tags and unclosed tag
  fragments are removed and whitespace is collapsed.
* A title is *junk* when it is missing or empty (``missing``), when nothing is left after removing
  HTML (``html``, e.g. the scraping leftover ``<span class="a-size-medium a-color-secondary"``), or
  when what is left contains no letter or digit (``punctuation``).
* An item with a junk title gets a fallback built from its brand and its description
  (``"{brand}: {description}"``, either part alone when the other is missing); when both are
  missing, from its details (``"key: value; ..."``, identifiers such as ASIN/UPC left out). An item
  with no usable text at all is dropped. Every case is counted.
* ``title`` is capped to ``title_max_words`` words and ``text`` to ``text_max_words`` words. For an
  item with a good title both are the cleaned title; for a fallback item ``title`` is the capped
  fallback and ``text`` the longer capped fallback.
* Metadata rows repeating an item id: the first row wins (counted).
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

_TAG = re.compile(r"<[^<>]*>|<[^<>]*$")  # complete tags, and an unclosed tag at the end
_WS = re.compile(r"\s+")
_ALNUM = re.compile(r"\w", re.UNICODE)
_DETAIL_SKIP = re.compile(r"asin|isbn|upc|ean|shipping|date first available|best sellers", re.I)

META_COLUMNS = ("item_id", "title", "brand", "description", "details")


def clean_text(value: Any) -> str:
    """Unescape HTML entities, drop HTML tags and fragments, collapse whitespace."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    s = str(value)
    for _ in range(3):
        unescaped = html.unescape(s)
        if unescaped == s:
            break
        s = unescaped
    s = _TAG.sub(" ", s)
    return _WS.sub(" ", s).strip()


def junk_reason(title: Any) -> str | None:
    """Why a raw title is junk (``missing``, ``html``, ``punctuation``), or None when usable."""
    raw = "" if title is None or (isinstance(title, float) and title != title) else str(title)
    if not raw.strip():
        return "missing"
    cleaned = clean_text(raw)
    if not cleaned:
        return "html"
    if not _ALNUM.search(cleaned.replace("_", "")):
        return "punctuation"
    return None


def cap_words(text: str, max_words: int) -> str:
    """The first ``max_words`` whitespace-separated words of ``text``."""
    words = text.split()
    return " ".join(words[:max_words]) if len(words) > max_words else text


def join_text(value: Any) -> str:
    """Flatten a metadata field (string, list of strings, nested lists) into one cleaned string."""
    if isinstance(value, list | tuple):
        parts = [join_text(v) for v in value]
        return " ".join(p for p in parts if p)
    return clean_text(value)


def details_text(details: Any) -> str:
    """A ``"key: value; ..."`` string of a details mapping, without identifier keys."""
    if not isinstance(details, dict):
        return join_text(details)
    parts = []
    for key, value in details.items():
        k = clean_text(key).rstrip(": ").strip()
        v = join_text(value)
        if k and v and not _DETAIL_SKIP.search(k):
            parts.append(f"{k}: {v}")
    return "; ".join(parts)


def _fallback(brand: str, description: str, details: str) -> tuple[str, str]:
    """The fallback text of a junk-titled item and the fields it came from ('' when none)."""
    if brand and description:
        return f"{brand}: {description}", "brand+description"
    if brand:
        return brand, "brand"
    if description:
        return description, "description"
    if details:
        return details, "details"
    return "", ""


def build_items(
    meta: pd.DataFrame, *, title_max_words: int = 24, text_max_words: int = 64
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Turn normalised metadata (``META_COLUMNS``; raw field values) into ``item_id, title, text``.

    Returns the item table (only items with usable text, first row per id) and the counts.
    """
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"metadata table lacks columns {missing}")
    ids = meta["item_id"].astype("string").str.strip()
    keep = ids.notna() & (ids != "")
    meta = meta.loc[keep.to_numpy()].assign(item_id=ids[keep])
    first = ~meta["item_id"].duplicated(keep="first")
    stats: dict[str, Any] = {
        "meta_rows": int(len(keep)),
        "meta_rows_without_id": int((~keep).sum()),
        "meta_duplicate_ids": int((~first).sum()),
    }
    meta = meta.loc[first.to_numpy()]
    junk: dict[str, int] = {}
    fallback: dict[str, int] = {}
    rows: list[tuple[str, str, str]] = []
    dropped = 0
    for item_id, title, brand, desc, details in meta[list(META_COLUMNS)].itertuples(
        index=False, name=None
    ):
        reason = junk_reason(title)
        if reason is None:
            t = cap_words(clean_text(title), title_max_words)
            rows.append((item_id, t, t))
            continue
        junk[reason] = junk.get(reason, 0) + 1
        text, source = _fallback(join_text(brand), join_text(desc), details_text(details))
        if not text or not _ALNUM.search(text):
            dropped += 1
            continue
        fallback[source] = fallback.get(source, 0) + 1
        rows.append((item_id, cap_words(text, title_max_words), cap_words(text, text_max_words)))
    items = pd.DataFrame(rows, columns=["item_id", "title", "text"], dtype="string")
    stats.update({
        "meta_items": int(len(meta)),
        "titles_ok": int(len(meta) - sum(junk.values())),
        "titles_junk": int(sum(junk.values())),
        "titles_junk_by_reason": dict(sorted(junk.items())),
        "titles_replaced_by_fallback": int(sum(fallback.values())),
        "fallback_by_source": dict(sorted(fallback.items())),
        "items_dropped_no_text": int(dropped),
        "items_with_text": int(len(items)),
    })
    return items, stats
