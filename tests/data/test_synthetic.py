"""Tests of the synthetic 2023-format generator."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from layerkd.data.synthetic import generate

REVIEW_KEYS = {"rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp",
               "helpful_vote", "verified_purchase"}
META_KEYS = {"main_category", "title", "average_rating", "rating_number", "features",
             "description", "price", "images", "videos", "store", "categories", "details",
             "parent_asin", "bought_together"}
DEFAULT = dict(n_users=500, n_families=12, items_per_family=20, min_history=8, max_history=20)


def _read(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict], list[dict]]:
    out = tmp_path_factory.mktemp("synth")
    counts = generate(out, "Synth", seed=0, **DEFAULT)
    return counts, _read(out / "Synth.jsonl.gz"), _read(out / "meta_Synth.jsonl.gz")


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(tmp_path / name, "X", seed=seed, n_users=40, n_families=4, items_per_family=10,
                 min_history=5, max_history=9)
    for fname in ("X.jsonl.gz", "meta_X.jsonl.gz"):
        a, b, c = ((tmp_path / d / fname).read_bytes() for d in "abc")
        assert a == b
        assert a != c


def test_review_and_meta_fields_follow_the_2023_schema(synth: tuple) -> None:
    counts, reviews, meta = synth
    assert all(set(r) == REVIEW_KEYS for r in reviews)
    assert all(set(m) == META_KEYS for m in meta)
    assert counts["n_reviews"] == len(reviews)
    assert counts["n_items"] == len(meta) == 12 * 20
    assert len({r["user_id"] for r in reviews}) == counts["n_users"] == 500
    parents = {m["parent_asin"] for m in meta}
    assert len(parents) == len(meta)
    assert {r["parent_asin"] for r in reviews} <= parents
    assert all(r["rating"] in {1.0, 2.0, 3.0, 4.0, 5.0} for r in reviews)
    # millisecond timestamps between 2019 and 2023
    assert all(isinstance(r["timestamp"], int) for r in reviews)
    assert all(1_546_300_800_000 <= r["timestamp"] < 1_704_067_200_000 for r in reviews)
    assert all(isinstance(m["categories"], list) and len(m["categories"]) == 2 for m in meta)


def test_histories_are_ordered_with_ties_and_within_bounds(synth: tuple) -> None:
    counts, reviews, _ = synth
    by_user: dict[str, list[int]] = defaultdict(list)
    for r in reviews:
        by_user[r["user_id"]].append(r["timestamp"])
    assert all(8 <= len(ts) <= 20 for ts in by_user.values())
    assert all(a <= b for ts in by_user.values() for a, b in zip(ts, ts[1:], strict=False))
    ties = sum(a == b for ts in by_user.values() for a, b in zip(ts, ts[1:], strict=False))
    assert ties == counts["n_timestamp_ties"] > 0
    last_ties = sum(ts[-1] == ts[-2] for ts in by_user.values())
    assert last_ties == counts["n_users_last_two_tied"] > 0
    # no user reviews the same product twice
    pairs = Counter((r["user_id"], r["parent_asin"]) for r in reviews)
    assert max(pairs.values()) == 1


def test_titles_are_short_distinct_and_families_have_own_vocabulary(synth: tuple) -> None:
    _, _, meta = synth
    titles = [m["title"] for m in meta]
    assert len(set(titles)) == len(titles)
    assert all(4 <= len(t.split()) <= 9 for t in titles)
    fam_words: dict[str, set[str]] = defaultdict(set)
    for m in meta:
        fam_words[m["categories"][1]] |= set(m["title"].lower().split())
    assert len(fam_words) == 12
    # every family has words no other family uses (brands, nouns)
    for fam, words in fam_words.items():
        others = set().union(*(w for f, w in fam_words.items() if f != fam))
        assert len(words - others) >= 5, fam


def test_sequences_stay_in_family_and_move_forward(synth: tuple) -> None:
    _, reviews, meta = synth
    family = {m["parent_asin"]: m["categories"][1] for m in meta}
    order = {m["parent_asin"]: i for i, m in enumerate(meta)}  # generation order = family order
    by_user: dict[str, list[str]] = defaultdict(list)
    for r in reviews:
        by_user[r["user_id"]].append(r["parent_asin"])
    same = forward = pairs = 0
    for seq in by_user.values():
        for a, b in zip(seq, seq[1:], strict=False):
            pairs += 1
            if family[a] == family[b]:
                same += 1
                forward += order[b] > order[a]
    assert 0.70 <= same / pairs <= 0.92  # P_STAY=0.8 plus switches to the same family by chance
    assert forward / same >= 0.70  # a random successor would be ahead about half of the time
    # a user's reviews concentrate on at most a few families
    n_fams = [len({family[i] for i in seq}) for seq in by_user.values()]
    assert sum(n_fams) / len(n_fams) < 4


def test_ratings_are_skewed_high_and_meta_agrees(synth: tuple) -> None:
    _, reviews, meta = synth
    ratings = Counter(r["rating"] for r in reviews)
    assert ratings[5.0] > ratings[4.0] > ratings[1.0]
    assert sum(k * v for k, v in ratings.items()) / len(reviews) > 3.7
    per_item: dict[str, list[float]] = defaultdict(list)
    for r in reviews:
        per_item[r["parent_asin"]].append(r["rating"])
    for m in meta:
        got = per_item.get(m["parent_asin"], [])
        assert m["rating_number"] == len(got)
        if got:
            assert m["average_rating"] == round(sum(got) / len(got), 1)


def test_invalid_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_families"):
        generate(tmp_path, "X", n_users=2, n_families=99, items_per_family=5, min_history=2,
                 max_history=3, seed=0)
    with pytest.raises(ValueError, match="max_history"):
        generate(tmp_path, "X", n_users=2, n_families=1, items_per_family=5, min_history=2,
                 max_history=6, seed=0)
