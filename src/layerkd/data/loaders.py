"""Readers of the published Amazon review formats into common tables.

Every reader returns ``(interactions, meta, stats)``: interactions with ``user_id, item_id, rating,
timestamp`` (timestamp in int64 seconds; rating float, NaN when the format has none), the metadata
normalised to :data:`layerkd.data.clean.META_COLUMNS` with raw field values (or None when the source
has no metadata), and the per-file line counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layerkd.data.csv_tables import read_csv_table
from layerkd.data.frames import interactions_frame, meta_frame
from layerkd.data.readers import parse_json_or_literal, parse_literal, read_records

def _first_existing(raw_dir: Path, names: list[str]) -> Path | None:
    for name in names:
        if (raw_dir / name).is_file():
            return raw_dir / name
    return None


def _require(raw_dir: Path, names: list[str]) -> Path:
    path = _first_existing(raw_dir, names)
    if path is None:
        raise FileNotFoundError(f"none of {names} found in {raw_dir}")
    return path


# ---------------------------------------------------------------- 2023 (McAuley lab, 2023 release)

META_2023 = {"item_id": "parent_asin", "title": "title", "brand": "store",
             "description": "description", "details": "details"}


def read_meta_2023(path: Path, max_bad_share: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """2023 ``meta_{Category}.jsonl(.gz)``."""
    recs, stats = read_records(path, required=("parent_asin",), max_bad_share=max_bad_share)
    return meta_frame(recs, META_2023), stats


def load_amazon2023(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """2023 raw reviews ``{Category}.jsonl.gz`` (ms timestamps) joined on ``parent_asin``."""
    path = _require(raw_dir, [f"{category}.jsonl.gz", f"{category}.jsonl"])
    recs, rstats = read_records(path, required=("user_id", "parent_asin"),
                                numeric=("rating", "timestamp"), max_bad_share=max_bad_share)
    inter = interactions_frame([r["user_id"] for r in recs], [r["parent_asin"] for r in recs],
                               [float(r["rating"]) for r in recs],
                               [r["timestamp"] for r in recs], ts_divisor=1000)
    mpath = _require(raw_dir, [f"meta_{category}.jsonl.gz", f"meta_{category}.jsonl"])
    meta, mstats = read_meta_2023(mpath, max_bad_share)
    return inter, meta, {"files": [rstats, mstats]}


def load_amazon2023_csv(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """2023 5-core benchmark CSV ``user_id,parent_asin,rating,timestamp`` (ms), optional meta."""
    path = _require(raw_dir, [f"{category}.csv.gz", f"{category}.csv"])
    df, cstats = read_csv_table(path, columns=("user_id", "parent_asin", "rating", "timestamp"),
                                required=("user_id", "parent_asin"),
                                numeric=("rating", "timestamp"), skip_header=True,
                                max_bad_share=max_bad_share)
    inter = interactions_frame(df["user_id"].tolist(), df["parent_asin"].tolist(),
                               df["rating"].to_numpy(), df["timestamp"].to_numpy(),
                               ts_divisor=1000)
    files = [cstats]
    meta = None
    mpath = _first_existing(raw_dir, [f"meta_{category}.jsonl.gz", f"meta_{category}.jsonl"])
    if mpath is not None:
        meta, mstats = read_meta_2023(mpath, max_bad_share)
        files.append(mstats)
    return inter, meta, {"files": files}


# ---------------------------------------------------------------- 2018 (Ni et al., 2018 release)

META_2018 = {"item_id": "asin", "title": "title", "brand": "brand",
             "description": "description", "details": "details"}


def _read_meta_2018(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    path = _require(raw_dir, [f"meta_{category}.json.gz", f"meta_{category}.json"])
    recs, stats = read_records(path, required=("asin",), max_bad_share=max_bad_share)
    return meta_frame(recs, META_2018), stats


def load_amazon2018(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """2018 5-core reviews ``{Category}_5.json.gz`` (seconds) and ``meta_{Category}.json.gz``."""
    path = _require(raw_dir, [f"{category}_5.json.gz", f"{category}_5.json"])
    recs, rstats = read_records(path, required=("reviewerID", "asin"),
                                numeric=("overall", "unixReviewTime"),
                                max_bad_share=max_bad_share)
    inter = interactions_frame([r["reviewerID"] for r in recs], [r["asin"] for r in recs],
                               [float(r["overall"]) for r in recs],
                               [r["unixReviewTime"] for r in recs])
    meta, mstats = _read_meta_2018(raw_dir, category, max_bad_share)
    return inter, meta, {"files": [rstats, mstats]}


def load_amazon2018_csv(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """2018 ratings-only ``{Category}.csv`` (no header: item,user,rating,timestamp s) + meta."""
    path = _require(raw_dir, [f"{category}.csv", f"{category}.csv.gz"])
    df, cstats = read_csv_table(path, columns=("item", "user", "rating", "timestamp"),
                                required=("item", "user"), numeric=("rating", "timestamp"),
                                skip_header=False, max_bad_share=max_bad_share)
    inter = interactions_frame(df["user"].tolist(), df["item"].tolist(),
                               df["rating"].to_numpy(), df["timestamp"].to_numpy())
    meta, mstats = _read_meta_2018(raw_dir, category, max_bad_share)
    return inter, meta, {"files": [cstats, mstats]}


# ---------------------------------------------------------------- 2014 (McAuley et al., 2014/2015)

META_2014 = {"item_id": "asin", "title": "title", "brand": "brand",
             "description": "description", "details": "categories"}


def load_amazon2014(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """2014 ``reviews_{Category}_5.json.gz`` and ``meta_{Category}.json.gz`` (Python literals)."""
    path = _require(raw_dir, [f"reviews_{category}_5.json.gz", f"reviews_{category}_5.json"])
    recs, rstats = read_records(path, required=("reviewerID", "asin"),
                                numeric=("overall", "unixReviewTime"),
                                parse=parse_json_or_literal, max_bad_share=max_bad_share)
    inter = interactions_frame([r["reviewerID"] for r in recs], [r["asin"] for r in recs],
                               [float(r["overall"]) for r in recs],
                               [r["unixReviewTime"] for r in recs])
    mpath = _require(raw_dir, [f"meta_{category}.json.gz", f"meta_{category}.json"])
    mrecs, mstats = read_records(mpath, required=("asin",), parse=parse_literal,
                                 max_bad_share=max_bad_share)
    return inter, meta_frame(mrecs, META_2014), {"files": [rstats, mstats]}
