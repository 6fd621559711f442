"""The whole data stage on the real Amazon files in ../shared/data (skipped when absent).

Expectations are computed independently here, by plain loops over the raw files.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from layerkd.data.prepare import PrepareParams, prepare_dataset
from layerkd.config import settings
from layerkd.data.sources import LoadOptions

MAG = "amazon2018/Magazine_Subscriptions"
CAT = "Magazine_Subscriptions"
def _params(**kw) -> PrepareParams:
    """Preparation settings: the schema defaults of ``data``, with the history length, training
    samples per user and calibration size these tests were written for, then ``kw``."""
    base = {"history_len": 8, "train_samples_per_user": 2, "n_calibration": 64}
    return settings(PrepareParams, "data", **{**base, **kw})


PARAMS = _params(n_candidates=49)  # 124 items survive; one user touched 28 of them



def _meta_expectations(meta_path: Path) -> dict[str, Any]:
    """First row per asin wins; a title is junk when empty, an HTML leftover or has no letter."""
    seen: set[str] = set()
    junk = replaced = span = 0
    with_text: set[str] = set()
    for line in gzip.open(meta_path, "rt", encoding="utf-8"):
        d = json.loads(line)
        if d["asin"] in seen:
            continue
        seen.add(d["asin"])
        title = (d.get("title") or "").strip()
        span += title == '<span class="a-size-medium a-color-secondary"'
        if title and not title.startswith("<") and any(c.isalnum() for c in title):
            with_text.add(d["asin"])
            continue
        junk += 1
        desc = " ".join(x for x in d.get("description") or [] if x.strip())
        details = {k: v for k, v in (d.get("details") or {}).items() if "ASIN" not in k}
        if (d.get("brand") or "").strip() or desc or details:
            replaced += 1
            with_text.add(d["asin"])
    return {"items": len(seen), "junk": junk, "replaced": replaced, "span": span,
            "with_text": with_text}


def _naive_core(rows: list[tuple[str, str, int]], keep_items: set[str], k: int) -> dict:
    """Earliest interaction per (user, item), items with text, then a plain-loop k-core."""
    earliest: dict[tuple[str, str], int] = {}
    for u, i, ts in rows:
        if (u, i) not in earliest or ts < earliest[(u, i)]:
            earliest[(u, i)] = ts
    pairs = {p: t for p, t in earliest.items() if p[1] in keep_items}
    while True:
        uc = Counter(u for u, _ in pairs)
        ic = Counter(i for _, i in pairs)
        kept = {p: t for p, t in pairs.items() if uc[p[0]] >= k and ic[p[1]] >= k}
        if len(kept) == len(pairs):
            return {"pairs": kept, "duplicates": len(rows) - len(earliest)}
        pairs = kept


def _check_outputs(out: Path, stats: dict, core: dict, k: int) -> pd.DataFrame:
    inter = pd.read_parquet(out / "interactions.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    items = pd.read_parquet(out / "items.parquet")
    got = {(u, i): t for u, i, t in zip(inter["user_id"], inter["item_id"], inter["timestamp"],
                                        strict=True)}
    assert got == core["pairs"]
    assert stats["dropped"]["duplicate_user_item"] == core["duplicates"]
    assert inter.groupby("user_id").size().min() >= k
    assert inter.groupby("item_id").size().min() >= k
    assert set(items["item_id"]) == set(inter["item_id"])
    assert not items["text"].str.contains("<span").any()
    touched: dict[str, set[str]] = {}
    for u, i in zip(inter["user_id"], inter["item_id"], strict=True):
        touched.setdefault(u, set()).add(i)
    for row in samples.itertuples(index=False):
        cands = list(row.candidates)
        assert cands[0] == row.target and len(set(cands)) == len(cands)
        assert row.target not in set(row.history)
        assert not set(cands[1:]) & touched[row.user_id]
    assert stats["samples"]["test"] == stats["samples"]["valid"] == inter["user_id"].nunique()
    return samples


@pytest.fixture(scope="module")
def meta_expect(shared_data: Path) -> dict[str, Any]:
    return _meta_expectations(shared_data / MAG / f"meta_{CAT}.json.gz")


def test_magazine_5core_reviews(shared_data: Path, tmp_path: Path, meta_expect: dict) -> None:
    stats = prepare_dataset(shared_data / MAG, "amazon2018", CAT, PARAMS, tmp_path)
    item_stats = stats["load"]["items"]
    assert meta_expect["span"] > 2000
    assert item_stats["meta_items"] == meta_expect["items"]
    assert item_stats["titles_junk"] == meta_expect["junk"]
    assert item_stats["titles_replaced_by_fallback"] == meta_expect["replaced"]
    assert item_stats["items_dropped_no_text"] == meta_expect["junk"] - meta_expect["replaced"]
    rows = [(r["reviewerID"], r["asin"], int(r["unixReviewTime"]))
            for r in map(json.loads, gzip.open(shared_data / MAG / f"{CAT}_5.json.gz", "rt"))]
    assert stats["raw_rows"] == len(rows) == 2375
    core = _naive_core(rows, meta_expect["with_text"], 5)
    _check_outputs(tmp_path, stats, core, 5)
    # day-granularity timestamps: many users' last two reviews tie
    assert stats["users_last_two_same_timestamp"] > 0


def test_magazine_ratings_csv(shared_data: Path, tmp_path: Path, meta_expect: dict) -> None:
    stats = prepare_dataset(shared_data / MAG, "amazon2018_csv", CAT, PARAMS, tmp_path)
    with open(shared_data / MAG / f"{CAT}.csv", newline="") as fh:
        rows = [(u, i, int(ts)) for i, u, _, ts in csv.reader(fh)]
    assert stats["raw_rows"] == len(rows) == 89_689
    core = _naive_core(rows, meta_expect["with_text"], 5)
    assert 1300 < core["duplicates"] < 1450  # "about 1,370 duplicate (item, user) pairs"
    _check_outputs(tmp_path, stats, core, 5)
    assert stats["kcore"]["kcore_iterations"] > 1


def test_all_beauty_2023_csv_named_by_id(shared_data: Path, tmp_path: Path) -> None:
    raw = shared_data / "amazon2023/All_Beauty"
    with pytest.raises(ValueError, match="no item metadata"):
        prepare_dataset(raw, "amazon2023_csv", "All_Beauty", _params(), tmp_path)
    stats = prepare_dataset(raw, "amazon2023_csv", "All_Beauty", _params(), tmp_path,
                            LoadOptions(allow_id_text=True))
    with open(raw / "All_Beauty.csv", newline="") as fh:
        rows = [(u, i, int(ts) // 1000) for u, i, _, ts in list(csv.reader(fh))[1:]]
    all_items = {i for _, i, _ in rows}
    assert stats["load"]["items"]["items_text_from_id"] == len(all_items) == 356
    core = _naive_core(rows, all_items, 5)
    _check_outputs(tmp_path, stats, core, 5)
    assert (stats["users"], stats["items"], stats["interactions"]) == (253, 356, 2535)
    items = pd.read_parquet(tmp_path / "items.parquet")
    assert (items["title"] == "item " + items["item_id"]).all()


def test_games_dev_at_its_own_kcore(shared_data: Path, tmp_path: Path) -> None:
    """The sparse Video_Games sample (RecBole files) at the dataset's ``kcore: 3`` while the
    ``data`` section says 5, against a plain-loop 3-core of the raw rows."""
    from dataclasses import asdict

    from layerkd.data.prepare import prepare_stage

    raw = shared_data / "llmrank_games_dev"
    outs = {n: tmp_path / f"{n}.parquet" for n in ("items", "interactions", "samples")}
    entry = {"name": "games_dev", "source": "local", "format": "recbole",
             "category": "GamesDev", "kcore": 3}  # fmt: skip
    data = {**asdict(_params(n_candidates=99, kcore=5)), "max_bad_share": 0.01}
    stats = prepare_stage(
        manifest=raw / "MANIFEST.json", item_table=outs["items"], interactions=outs["interactions"],
        samples=outs["samples"], stats=tmp_path / "stats.json", dataset=entry, data=data,
    )  # fmt: skip
    with open(raw / "GamesDev.inter") as fh:
        rows = [(u, i, int(float(t))) for u, i, t in (line.split("\t") for line in list(fh)[1:])]
    titled = set(pd.read_csv(raw / "GamesDev.item", sep="\t")["item_id:token"])
    core = _naive_core(rows, titled, 3)
    _check_outputs(tmp_path, stats, core, 3)
    assert stats["kcore"]["kcore"] == 3 and stats["items"] > 1000  # sparse: many items survive
