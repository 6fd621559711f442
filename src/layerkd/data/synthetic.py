"""A synthetic Amazon-Reviews-2023-style category with learnable sequential structure.

Items belong to semantic families (espresso gear, trail running, sci-fi novels, ...), each with its
own title vocabulary. Users prefer one or two families; the next item is usually from the family of
the last one (``P_STAY``), sometimes from the user's other family, rarely random; inside a family
users tend to move forward through a fixed family-specific ordering, so order matters. Ratings are
high for preferred families and spread out otherwise. Timestamps increase per user with deliberate
ties. The output files follow the raw 2023 review and metadata schemas, gzip with ``mtime=0`` so the
same seed gives byte-identical files.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from layerkd.data.synthetic_vocab import FAMILIES, Family
from layerkd.io import atomic_path

P_STAY = 0.80  # next item from the same family as the last one
P_SWITCH = 0.15  # switch to the user's other preferred family (else stay when there is none)
P_FORWARD = 0.75  # inside a family, step forward along the family ordering
P_TIE = 0.08  # next review has the same timestamp as the previous one
ZIPF_EXPONENT = 0.7  # mild popularity skew inside a family
RATING_P_LIKED = (0.02, 0.03, 0.08, 0.27, 0.60)
RATING_P_OTHER = (0.12, 0.15, 0.28, 0.25, 0.20)
MIN_TITLE_WORDS, MAX_TITLE_WORDS = 4, 9
START_MS = 1_546_300_800_000  # 2019-01-01
SPAN_MS = 3 * 365 * 86_400_000
MEAN_GAP_MS = 9 * 86_400_000
_CUM_LIKED = np.cumsum(RATING_P_LIKED)[:-1]
_CUM_OTHER = np.cumsum(RATING_P_OTHER)[:-1]
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
_PRAISE = ("Exactly what I needed", "Great quality", "Works as described", "Love it")
_COMPLAINT = ("Not as described", "Broke quickly", "Disappointed", "Returned it")


def _ids(rng: np.random.Generator, n: int, prefix: str, length: int, taken: set[str]) -> list[str]:
    """``n`` distinct random ids ``prefix + length`` characters, none of them in ``taken``."""
    out: list[str] = []
    while len(out) < n:
        s = prefix + "".join(rng.choice(_ID_ALPHABET, size=length))
        if s not in taken:
            taken.add(s)
            out.append(s)
    return out


def _titles(
    rng: np.random.Generator, fam: Family, n: int, taken: set[str]
) -> list[list[str]]:
    """``n`` distinct titles ``brand adjective noun [qualifier]`` (as word groups) of one family."""
    limit = len(fam.brands) * len(fam.adjectives) * len(fam.nouns) * (len(fam.qualifiers) + 1)
    if n > limit:
        raise ValueError(f"family {fam.name!r} can make at most {limit} titles, asked for {n}")
    out: list[list[str]] = []
    while len(out) < n:
        parts = [fam.brands[rng.integers(len(fam.brands))],
                 fam.adjectives[rng.integers(len(fam.adjectives))],
                 fam.nouns[rng.integers(len(fam.nouns))]]
        q = rng.integers(len(fam.qualifiers) + 1)
        if q < len(fam.qualifiers):
            parts.append(fam.qualifiers[q])
        title = " ".join(parts)
        if MIN_TITLE_WORDS <= len(title.split()) <= MAX_TITLE_WORDS and title not in taken:
            taken.add(title)
            out.append(parts)
    return out


def _pick(rng: np.random.Generator, weights: np.ndarray, free: np.ndarray) -> int | None:
    """A popularity-weighted index among the ``free`` positions, or None when none is free."""
    cum = np.cumsum(weights * free)
    if cum[-1] <= 0:
        return None
    return int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))


def _history(rng: np.random.Generator, prefs: list[int], length: int, pop: np.ndarray) -> list[int]:
    """One user's item sequence as global indices ``family * items_per_family + position``."""
    n_fam, per = pop.shape
    free = np.ones((n_fam, per), dtype=bool)
    last_pos = np.full(n_fam, -1)
    fam = prefs[0]
    seq: list[int] = []
    for t in range(length):
        if t > 0:
            u = rng.random()
            if u >= P_STAY + P_SWITCH:
                fam = int(rng.integers(n_fam))
            elif u >= P_STAY and len(prefs) > 1:
                fam = prefs[1] if fam == prefs[0] else prefs[0]
        pos: int | None = None
        if last_pos[fam] >= 0 and rng.random() < P_FORWARD:
            start = last_pos[fam] + 1 + int(rng.random() < 0.3)
            ahead = np.flatnonzero(free[fam, start:])
            pos = int(start + ahead[0]) if ahead.size else None
        if pos is None:
            pos = _pick(rng, pop[fam], free[fam])
        if pos is None:  # family exhausted: any unseen item
            flat = int(rng.choice(np.flatnonzero(free.ravel())))
            fam, pos = divmod(flat, per)
        free[fam, pos] = False
        last_pos[fam] = pos
        seq.append(fam * per + pos)
    return seq


def _gz_jsonl(dest: Path, records: list[dict[str, Any]]) -> None:
    """Write JSON lines gzipped with ``mtime=0`` (so identical records give identical bytes)."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    with atomic_path(dest, suffix=".gz") as tmp:
        tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))


def generate(
    out_dir: Path,
    category: str,
    *,
    n_users: int = 500,
    n_families: int = 12,
    items_per_family: int = 20,
    min_history: int = 8,
    max_history: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``{category}.jsonl.gz`` and ``meta_{category}.jsonl.gz`` under ``out_dir``.

    Returns counts: users, families, items, reviews, timestamp ties (a review sharing its
    predecessor's timestamp) and users whose last two reviews share a timestamp.
    """
    if not 1 <= n_families <= len(FAMILIES):
        raise ValueError(f"n_families must be in 1..{len(FAMILIES)}, got {n_families}")
    if not 1 <= min_history <= max_history:
        raise ValueError(f"need 1 <= min_history <= max_history, got {min_history}, {max_history}")
    n_items = n_families * items_per_family
    if max_history > n_items:
        raise ValueError(f"max_history {max_history} exceeds the number of items {n_items}")
    rng = np.random.default_rng(seed)
    fams = FAMILIES[:n_families]
    taken_ids: set[str] = set()
    taken_titles: set[str] = set()
    made = [t for f in fams for t in _titles(rng, f, items_per_family, taken_titles)]
    titles = [" ".join(words) for words in made]
    parts = [(words[1], words[2]) for words in made]
    parents = _ids(rng, len(titles), "B0", 8, taken_ids)
    variants = _ids(rng, len(titles), "B0", 8, taken_ids)
    ranks = np.stack([rng.permutation(items_per_family) for _ in fams])
    pop = 1.0 / (ranks + 1.0) ** ZIPF_EXPONENT
    users = _ids(rng, n_users, "A", 27, taken_ids)

    reviews: list[dict[str, Any]] = []
    ratings_of: list[list[int]] = [[] for _ in titles]
    ties = last_ties = 0
    for user in users:
        prefs = [int(f) for f in rng.choice(n_families, size=min(n_families, 1 + int(
            rng.random() < 0.6)), replace=False)]
        seq = _history(rng, prefs, int(rng.integers(min_history, max_history + 1)), pop)
        n = len(seq)
        ts = START_MS + int(rng.integers(SPAN_MS))
        tied = rng.random(n) < P_TIE
        tied[0] = False
        gaps = np.where(tied, 0, 1000 + rng.exponential(MEAN_GAP_MS, n).astype(np.int64))
        stamps = ts + np.cumsum(gaps) - gaps[0]
        ties += int(tied.sum())
        last_ties += int(n > 1 and tied[-1])
        liked = np.isin(np.asarray(seq) // items_per_family, prefs)
        draws = rng.random(n)
        ratings = 1 + np.where(liked, np.searchsorted(_CUM_LIKED, draws, side="right"),
                               np.searchsorted(_CUM_OTHER, draws, side="right"))
        child = rng.random(n) < 0.2
        votes = rng.poisson(0.7, n)
        verified = rng.random(n) < 0.85
        phrases = rng.integers(4, size=n)
        for t, item in enumerate(seq):
            rating = int(ratings[t])
            ratings_of[item].append(rating)
            adj, noun = parts[item]
            phrase = (_PRAISE if rating >= 4 else _COMPLAINT)[phrases[t]]
            reviews.append({
                "rating": float(rating),
                "title": phrase,
                "text": f"{phrase}. This {adj.lower()} {noun.lower()} "
                        f"{'does the job' if rating >= 3 else 'let me down'}.",
                "images": [],
                "asin": variants[item] if child[t] else parents[item],
                "parent_asin": parents[item],
                "user_id": user,
                "timestamp": int(stamps[t]),
                "helpful_vote": int(votes[t]),
                "verified_purchase": bool(verified[t]),
            })

    meta: list[dict[str, Any]] = []
    for i, title in enumerate(titles):
        fam = fams[i // items_per_family]
        brand = made[i][0]
        r = ratings_of[i]
        meta.append({
            "main_category": fam.main_category,
            "title": title,
            "average_rating": round(float(np.mean(r)), 1) if r else None,
            "rating_number": len(r),
            "features": [f"Made by {brand}", f"Part of our {fam.subcategory.lower()} range"],
            "description": [f"{title}. A {fam.subcategory.lower()} product from {brand}."],
            "price": round(float(rng.uniform(5, 150)), 2) if rng.random() < 0.8 else None,
            "images": [],
            "videos": [],
            "store": brand,
            "categories": [fam.main_category, fam.subcategory],
            "details": {"Brand": brand, "Item model number": f"{brand[:3].upper()}-{i:04d}"},
            "parent_asin": parents[i],
            "bought_together": None,
        })

    out_dir = Path(out_dir)
    _gz_jsonl(out_dir / f"{category}.jsonl.gz", reviews)
    _gz_jsonl(out_dir / f"meta_{category}.jsonl.gz", meta)
    return {
        "category": category,
        "seed": seed,
        "n_users": n_users,
        "n_families": n_families,
        "n_items": len(titles),
        "n_reviews": len(reviews),
        "n_timestamp_ties": int(ties),
        "n_users_last_two_tied": int(last_ties),
    }
