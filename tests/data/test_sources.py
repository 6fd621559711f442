"""Tests of load_raw on fixtures written to each documented raw schema, and of raw_files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layerkd.data.prepare import PrepareParams, prepare
from layerkd.data.readers import BadFileError
from layerkd.config import settings
from layerkd.data.sources import LoadOptions, load_raw, raw_files, raw_urls

SPAN = '<span class="a-size-medium a-color-secondary"'


def _params(**kw) -> PrepareParams:
    """Preparation settings: the schema defaults of ``data``, with the history length, training
    samples per user and calibration size these tests were written for, then ``kw``."""
    base = {"history_len": 8, "train_samples_per_user": 2, "n_calibration": 64}
    return settings(PrepareParams, "data", **{**base, **kw})


def _gz_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line in lines)


def _review23(user: str, parent: str, ts_ms: int, rating: Any = 5.0) -> dict[str, Any]:
    return {"rating": rating, "title": "t", "text": "x", "images": [], "asin": parent + "-c",
            "parent_asin": parent, "user_id": user, "timestamp": ts_ms, "helpful_vote": 0,
            "verified_purchase": True}


def _meta23(parent: str, title: str, store: str | None = None) -> dict[str, Any]:
    return {"main_category": "Beauty", "title": title, "average_rating": 4.0,
            "rating_number": 1, "features": [], "description": [], "price": None, "images": [],
            "videos": [], "store": store, "categories": [], "details": {},
            "parent_asin": parent, "bought_together": None}


def test_amazon2023_raw_join_on_parent_asin_and_ms_to_seconds(tmp_path: Path) -> None:
    reviews = [_review23("u1", "P1", 1_600_000_000_999), _review23("u1", "P2", 1_600_000_100_000),
               _review23("u2", "P1", 1_600_000_200_500, rating=3.0),
               _review23("u2", "P9", 1_600_000_300_000)]
    meta = [_meta23("P1", "Rose &amp; Oud Serum"), _meta23("P2", "", store="Glowco"),
            _meta23("P1", "Duplicate loses")]
    _gz_lines(tmp_path / "Beauty.jsonl.gz", [json.dumps(r) for r in reviews])
    _gz_lines(tmp_path / "meta_Beauty.jsonl.gz", [json.dumps(m) for m in meta])
    inter, items, stats = load_raw(tmp_path, "amazon2023", "Beauty")
    assert inter["item_id"].tolist() == ["P1", "P2", "P1", "P9"]  # parent_asin, not asin
    assert inter["timestamp"].tolist() == [1_600_000_000, 1_600_000_100, 1_600_000_200,
                                           1_600_000_300]
    assert inter["timestamp"].dtype == np.int64
    assert inter["rating"].tolist() == [5.0, 5.0, 3.0, 5.0]
    assert dict(zip(items["item_id"], items["title"], strict=True)) == {
        "P1": "Rose & Oud Serum", "P2": "Glowco"}
    assert stats["items"]["meta_duplicate_ids"] == 1
    assert stats["items"]["fallback_by_source"] == {"brand": 1}


def test_amazon2023_csv_without_meta_needs_explicit_id_text(tmp_path: Path) -> None:
    rows = ["user_id,parent_asin,rating,timestamp"] + [
        f"u{u},p{i},5.0,{1_500_000_000_000 + 1000 * (u * 10 + i)}" for u in range(3)
        for i in range(4)]
    (tmp_path / "All_Beauty.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="no item metadata.*allow_id_text"):
        load_raw(tmp_path, "amazon2023_csv", "All_Beauty")
    inter, items, stats = load_raw(tmp_path, "amazon2023_csv", "All_Beauty",
                                   LoadOptions(allow_id_text=True))
    assert len(inter) == 12 and inter["timestamp"].iloc[1] == 1_500_000_001
    assert sorted(items["title"]) == ["item p0", "item p1", "item p2", "item p3"]
    assert (items["title"] == items["text"]).all()
    assert stats["items"]["items_text_from_id"] == 4
    # with the raw 2023 metadata next to it, titles come from there
    _gz_lines(tmp_path / "meta_All_Beauty.jsonl.gz",
              [json.dumps(_meta23(f"p{i}", f"Lip Balm {i}")) for i in range(4)])
    _, items, _ = load_raw(tmp_path, "amazon2023_csv", "All_Beauty")
    assert sorted(items["title"]) == [f"Lip Balm {i}" for i in range(4)]


def _review14(user: str, asin: str, ts: int) -> str:
    return json.dumps({"reviewerID": user, "asin": asin, "reviewerName": "N", "helpful": [0, 0],
                       "reviewText": "ok", "overall": 4.0, "summary": "s",
                       "unixReviewTime": ts, "reviewTime": "05 13, 2014"})


def test_amazon2014_dict_literal_metadata(tmp_path: Path) -> None:
    _gz_lines(tmp_path / "reviews_Beauty_5.json.gz",
              [_review14("A1", "X1", 1_400_000_000), _review14("A1", "X2", 1_400_000_100)])
    meta = [
        {"asin": "X1", "title": "Rose Water Toner &amp; Mist", "price": 9.99,
         "salesRank": {"Beauty": 5}, "categories": [["Beauty", "Skin Care"]], "brand": "Aura"},
        {"asin": "X2", "categories": [["Beauty", "Hair Care", "Shampoo"]],
         "description": "A gentle 'sulfate-free' shampoo."},
        {"asin": "X3", "title": SPAN, "categories": [["Beauty", "Nails"]]},
    ]
    _gz_lines(tmp_path / "meta_Beauty.json.gz", [repr(m) for m in meta])  # Python literals
    inter, items, stats = load_raw(tmp_path, "amazon2014", "Beauty")
    assert inter["timestamp"].tolist() == [1_400_000_000, 1_400_000_100]
    got = dict(zip(items["item_id"], items["title"], strict=True))
    assert got == {"X1": "Rose Water Toner & Mist", "X2": "A gentle 'sulfate-free' shampoo.",
                   "X3": "Beauty Nails"}
    assert stats["items"]["fallback_by_source"] == {"description": 1, "details": 1}


def test_amazon2018_reviews_and_ratings_csv(tmp_path: Path) -> None:
    reviews = [{"overall": 5.0, "verified": True, "reviewTime": "02 26, 2014",
                "reviewerID": "R1", "asin": "M1", "unixReviewTime": 1_393_372_800},
               {"overall": 2.0, "reviewerID": "R2", "asin": "M1", "unixReviewTime": 1}]
    _gz_lines(tmp_path / "Mags_5.json.gz", [json.dumps(r) for r in reviews])
    _gz_lines(tmp_path / "meta_Mags.json.gz", [json.dumps(
        {"asin": "M1", "title": SPAN, "brand": "Reason Magazine",
         "description": ["REASON is edited for people interested in liberty."],
         "details": {"Publisher:": "Reason Magazine", "ASIN: ": "M1"}})])
    (tmp_path / "Mags.csv").write_text("M1,R1,5.0,1393372800\nM1,R3,4.0,1393372900\n")
    inter, items, _ = load_raw(tmp_path, "amazon2018", "Mags")
    assert inter[["user_id", "item_id", "rating", "timestamp"]].values.tolist() == [
        ["R1", "M1", 5.0, 1_393_372_800], ["R2", "M1", 2.0, 1]]
    assert items["title"].tolist() == [
        "Reason Magazine: REASON is edited for people interested in liberty."]
    inter, _, _ = load_raw(tmp_path, "amazon2018_csv", "Mags")
    assert inter["user_id"].tolist() == ["R1", "R3"]  # columns are item,user,rating,timestamp
    # the same files through the local source
    inter2, _, stats = load_raw(tmp_path, "local", "Mags", LoadOptions(format="amazon2018_csv"))
    assert inter2.equals(inter) and stats["format"] == "amazon2018_csv"
    with pytest.raises(ValueError, match="needs a format"):
        load_raw(tmp_path, "local", "Mags")


def test_dirty_review_file_end_to_end(tmp_path: Path) -> None:
    good = [json.dumps(_review23(f"u{i % 7}", f"P{i % 11}", 1_600_000_000_000 + i))
            for i in range(200)]
    _gz_lines(tmp_path / "meta_C.jsonl.gz", [json.dumps(_meta23(f"P{i}", f"Item {i}"))
                                              for i in range(11)])
    one_bad = good[:50] + ["{broken"] + good[50:]
    _gz_lines(tmp_path / "C.jsonl.gz", one_bad)
    inter, _, stats = load_raw(tmp_path, "amazon2023", "C")
    assert len(inter) == 200
    assert stats["files"][0]["bad_lines"] == 1
    three_bad = good[:5] + ["nope", json.dumps(_review23("u", "P1", 1, rating="bad"))] \
        + good[5:] + ["{"]
    _gz_lines(tmp_path / "C.jsonl.gz", three_bad)
    with pytest.raises(BadFileError, match=r"C\.jsonl\.gz: 3 of 203 lines.*line 6 \(malformed"):
        load_raw(tmp_path, "amazon2023", "C")
    inter, _, stats = load_raw(tmp_path, "amazon2023", "C", LoadOptions(max_bad_share=0.02))
    assert stats["files"][0]["bad_by_reason"] == {"malformed": 2, "non_numeric_rating": 1}


def test_raw_files_are_the_published_names() -> None:
    assert raw_files("amazon2018", "Magazine_Subscriptions") == [
        "Magazine_Subscriptions_5.json.gz", "meta_Magazine_Subscriptions.json.gz"]
    assert raw_files("amazon2018_csv", "Magazine_Subscriptions") == [
        "Magazine_Subscriptions.csv", "meta_Magazine_Subscriptions.json.gz"]
    assert raw_files("amazon2023", "All_Beauty") == ["All_Beauty.jsonl.gz",
                                                     "meta_All_Beauty.jsonl.gz"]
    assert raw_files("amazon2023_csv", "All_Beauty") == ["All_Beauty.csv.gz",
                                                         "meta_All_Beauty.jsonl.gz"]
    assert raw_files("amazon2014", "Beauty") == ["reviews_Beauty_5.json.gz",
                                                 "meta_Beauty.json.gz"]
    assert raw_files("recbole", "ml-100k") == ["ml-100k.inter", "ml-100k.item"]
    assert raw_files("synthetic", "Synth") == ["Synth.jsonl.gz", "meta_Synth.jsonl.gz"]
    assert raw_files("local", "X", fmt="amazon2014") == raw_files("amazon2014", "X")
    assert raw_urls("amazon2018", "Magazine_Subscriptions")[0] == (
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall/"
        "Magazine_Subscriptions_5.json.gz")
    assert raw_urls("amazon2023_csv", "All_Beauty")[0] == (
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/benchmark/5core/"
        "rating_only/All_Beauty.csv.gz")
    with pytest.raises(ValueError, match="unknown source"):
        raw_files("amazon1999", "X")


def test_loaded_2023_fixture_goes_through_prepare(tmp_path: Path) -> None:
    reviews = [_review23(f"u{u}", f"P{(u + k) % 9}", 1_600_000_000_000 + 1000 * k)
               for u in range(6) for k in range(5)]
    _gz_lines(tmp_path / "C.jsonl.gz", [json.dumps(r) for r in reviews])
    _gz_lines(tmp_path / "meta_C.jsonl.gz", [json.dumps(_meta23(f"P{i}", f"Item {i}"))
                                              for i in range(9)])
    inter, items, _ = load_raw(tmp_path, "amazon2023", "C")
    params = _params(kcore=2, n_candidates=4, n_train_candidates=3, n_calibration=0)
    _, df, samples, stats = prepare(inter, items, params)
    assert stats["users"] == 6 and stats["interactions"] == 30
    test_u0 = samples[(samples["user_id"] == "u0") & (samples["split"] == "test")].iloc[0]
    assert test_u0["target"] == "P4" and list(test_u0["history"]) == ["P0", "P1", "P2", "P3"]
    assert set(test_u0["candidates"][1:]) <= {"P5", "P6", "P7", "P8"}
