"""From raw interactions and item texts to the processed tables every later stage reads.

Steps, each counted in ``stats``:

1. drop interactions with a missing ``user_id``, ``item_id`` or ``timestamp`` (a missing rating
   is kept: ``target_rating`` is then NaN);
2. de-duplicate ``(user_id, item_id)`` keeping the earliest interaction (ties: first in input);
3. drop interactions whose item has no metadata text;
4. iterative k-core: every pass removes each interaction whose user has fewer than
   ``max(kcore, 3)`` or whose item has fewer than ``kcore`` interactions in the current table,
   until a pass removes nothing (a leave-one-out split needs 3 interactions per user);
5. chronological leave-one-out samples with seeded negatives (:mod:`layerkd.data.samples`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layerkd.data.samples import SAMPLE_COLUMNS, SPLITS, build_samples
from layerkd.data.sources import LoadOptions, load_raw
from layerkd.io import write_json, write_parquet

log = logging.getLogger(__name__)

TIE_BREAK = (
    "each user's interactions are ordered by (timestamp, item_id) ascending: interactions with "
    "the same timestamp are ordered by item_id as a string"
)
MIN_USER_INTERACTIONS = 3  # test + valid target + at least one history item


@dataclass(frozen=True)
class PrepareParams:
    """Parameters of the data preparation (they change the processed data); the ``data``
    section of the config schema describes each and holds its default."""

    kcore: int  # iterative k-core on users and items
    history_len: int  # most recent items kept in a history
    n_candidates: int  # negatives per valid/test sample
    n_train_candidates: int  # negatives per train/calibration sample
    train_samples_per_user: int | str  # training targets per user (latest first), or "all"
    n_calibration: int  # calibration samples: a seeded subset of train rows
    seed: int
    max_users: int | None  # a seeded sample of users after the k-core (None: all)


def _clean(interactions: pd.DataFrame, items: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                       dict[str, Any]]:
    """Steps 1-3: missing fields, duplicates, items without text."""
    df = interactions.loc[:, ["user_id", "item_id", "rating", "timestamp"]].copy()
    stats: dict[str, Any] = {"raw_rows": int(len(df))}
    for col in ("user_id", "item_id"):
        df[col] = df[col].astype("string").str.strip()
    df["timestamp"] = pd.to_numeric(df["timestamp"], errors="coerce")
    df["rating"] = pd.to_numeric(df["rating"], errors="coerce").astype(np.float64)
    missing = (df["user_id"].isna() | (df["user_id"] == "") | df["item_id"].isna()
               | (df["item_id"] == "") | df["timestamp"].isna()).to_numpy(dtype=bool)
    df = df.loc[~missing]
    df["timestamp"] = df["timestamp"].astype(np.int64)
    df = df.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    dup = df.duplicated(["user_id", "item_id"], keep="first").to_numpy()
    df = df.loc[~dup]

    it = items.loc[:, ["item_id", "title", "text"]].copy()
    for col in ("item_id", "title", "text"):
        it[col] = it[col].astype("string").str.strip()
    it = it.loc[it["item_id"].notna() & (it["item_id"] != "")]
    dup_items = it["item_id"].duplicated(keep="first").to_numpy()
    it = it.loc[~dup_items]
    no_text = (it["text"].isna() | (it["text"] == "")).to_numpy(dtype=bool)
    it = it.loc[~no_text]
    it = it.assign(title=it["title"].fillna(""))
    has_text = df["item_id"].isin(it["item_id"]).to_numpy()
    df = df.loc[has_text]
    stats["dropped"] = {
        "missing_fields": int(missing.sum()),
        "duplicate_user_item": int(dup.sum()),
        "item_without_text": int((~has_text).sum()),
    }
    stats["items_duplicate_ids"] = int(dup_items.sum())
    stats["items_empty_text"] = int(no_text.sum())
    return df.reset_index(drop=True), it.reset_index(drop=True), stats


def kcore_filter(df: pd.DataFrame, k: int, min_user: int | None = None) -> tuple[pd.DataFrame,
                                                                                 dict[str, Any]]:
    """Iterative k-core (step 4); ``min_user`` defaults to ``max(k, 3)``.

    Returns the filtered table and ``{"kcore_iterations": passes that removed rows, "dropped_rows",
    "dropped_users", "dropped_items"}``.
    """
    min_user = max(k, MIN_USER_INTERACTIONS) if min_user is None else min_user
    u_codes, u_uniq = pd.factorize(df["user_id"])
    i_codes, i_uniq = pd.factorize(df["item_id"])
    keep = np.ones(len(df), dtype=bool)
    passes = 0
    while True:
        uc = np.bincount(u_codes[keep], minlength=len(u_uniq))
        ic = np.bincount(i_codes[keep], minlength=len(i_uniq))
        bad = keep & ((uc[u_codes] < min_user) | (ic[i_codes] < k))
        if not bad.any():
            break
        keep &= ~bad
        passes += 1
    out = df.loc[keep].reset_index(drop=True)
    stats = {
        "kcore": k,
        "user_min_interactions": min_user,
        "kcore_iterations": passes,
        "dropped_rows": int((~keep).sum()),
        "dropped_users": int(len(u_uniq) - len(np.unique(u_codes[keep]))),
        "dropped_items": int(len(i_uniq) - len(np.unique(i_codes[keep]))),
    }
    return out, stats


def sample_users(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The interactions of a seeded sample of ``n`` users (all of them when there are fewer),
    and what was kept; items keep whatever interactions those users have."""
    users = np.sort(df["user_id"].unique().to_numpy(dtype=object))
    if n >= len(users):
        return df, {"requested": n, "users_before": len(users), "users_kept": len(users)}
    chosen = np.random.default_rng([seed, 7]).choice(len(users), size=n, replace=False)
    keep = df["user_id"].isin(set(users[chosen].tolist()))
    out = df.loc[keep].reset_index(drop=True)
    return out, {"requested": n, "users_before": len(users), "users_kept": n,
                 "seed": seed, "interactions_kept": int(keep.sum())}  # fmt: skip


def prepare(
    interactions: pd.DataFrame, items: pd.DataFrame, params: PrepareParams
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Clean, k-core, split and sample: returns ``(items, interactions, samples, stats)``."""
    df, it, stats = _clean(interactions, items)
    stats["after_clean"] = {"users": int(df["user_id"].nunique()),
                            "items": int(df["item_id"].nunique()), "interactions": int(len(df))}
    df, kstats = kcore_filter(df, params.kcore)
    stats["kcore"] = kstats
    stats["dropped"]["kcore"] = kstats["dropped_rows"]
    if df.empty:
        raise ValueError(
            f"no interactions left after the {params.kcore}-core (users need "
            f"{kstats['user_min_interactions']}, items {params.kcore}): {stats['after_clean']} "
            f"before it; dropped so far: {stats['dropped']}"
        )

    if params.max_users is not None:
        df, stats["max_users"] = sample_users(df, params.max_users, params.seed)
    it = it.loc[it["item_id"].isin(df["item_id"])]
    item_ids = np.sort(it["item_id"].to_numpy(dtype=object))
    it = it.set_index("item_id").loc[item_ids].reset_index()
    user_ids = np.sort(df["user_id"].unique().to_numpy(dtype=object))
    u_codes = np.searchsorted(user_ids, df["user_id"].to_numpy(dtype=object))
    i_codes = np.searchsorted(item_ids, df["item_id"].to_numpy(dtype=object))
    order = np.lexsort((i_codes, df["timestamp"].to_numpy(), u_codes))  # the tie-break rule
    df = df.iloc[order].reset_index(drop=True)
    u_codes, seq_items = u_codes[order], i_codes[order]
    lengths = np.bincount(u_codes, minlength=len(user_ids))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    samples = build_samples(user_ids, item_ids, starts, lengths, seq_items,
                            df["rating"].to_numpy(np.float64), params)

    ts = df["timestamp"].to_numpy()
    last = starts + lengths - 1
    tied = (lengths >= 2) & (ts[last] == ts[np.maximum(last - 1, 0)])
    stats.update({
        "users": int(len(user_ids)),
        "items": int(len(item_ids)),
        "interactions": int(len(df)),
        "samples": {s: int((samples["split"] == s).sum()) for s in SPLITS},
        "valid_halves": samples["valid_half"].value_counts().to_dict(),
        "tie_break": TIE_BREAK,
        "users_last_two_same_timestamp": int(tied.sum()),
        "ratings_present": bool(df["rating"].notna().any()),
    })
    return it, df, samples.loc[:, list(SAMPLE_COLUMNS)], stats


def prepare_dataset(
    raw_dir: Path,
    source: str,
    category: str,
    params: PrepareParams,
    out_dir: Path,
    load_options: LoadOptions | None = None,
) -> dict[str, Any]:
    """``load_raw`` + ``prepare``; writes ``items``, ``interactions``, ``samples`` (Parquet) and
    ``stats.json`` under ``out_dir`` and returns the stats."""
    inter, items, load_stats = load_raw(Path(raw_dir), source, category, load_options)
    it, df, samples, stats = prepare(inter, items, params)
    stats = {"source": source, "category": category, "params": asdict(params),
             "load": load_stats, **stats}
    out_dir = Path(out_dir)
    write_parquet(out_dir / "items.parquet", it)
    write_parquet(out_dir / "interactions.parquet", df)
    write_parquet(out_dir / "samples.parquet", samples)
    write_json(out_dir / "stats.json", stats)
    return stats


def prepare_stage(
    *,
    manifest: Path,
    item_table: Path,
    interactions: Path,
    samples: Path,
    stats: Path,
    dataset: dict[str, Any],
    data: dict[str, Any],
) -> dict[str, Any]:
    """``prepare_data``: the raw files beside ``manifest`` to the four processed files, with
    parameters from the ``data`` section of the config and the ``dataset`` entry (whose own
    ``kcore``, when it has one, replaces ``data.kcore``: a sparse catalogue beside dense ones)."""
    out_dir = item_table.parent
    expected = {p.name: p for p in (item_table, interactions, samples, stats)}
    want = {"items.parquet", "interactions.parquet", "samples.parquet", "stats.json"}
    if set(expected) != want or any(p.parent != out_dir for p in expected.values()):
        raise ValueError(f"prepare_data writes {sorted(want)} into one directory, got {expected}")
    fields = set(PrepareParams.__dataclass_fields__)
    data = {**data, **({"kcore": dataset["kcore"]} if "kcore" in dataset else {})}
    params = PrepareParams(**{k: v for k, v in data.items() if k in fields})
    options = LoadOptions(format=dataset.get("format"), max_bad_share=float(data["max_bad_share"]))
    result = prepare_dataset(
        manifest.parent, dataset["source"], dataset["category"], params, out_dir, options
    )
    log.info("prepared %s: %s", dataset["name"], {k: result.get(k) for k in ("users", "items")})
    return result
