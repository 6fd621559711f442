"""Tests of prepare: cleaning, k-core, leave-one-out split, negatives, outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layerkd.data.prepare import PrepareParams, kcore_filter, prepare, prepare_dataset
from layerkd.data.synthetic import generate
from layerkd.config import settings
from layerkd.io import read_json


def _params(**kw) -> PrepareParams:
    """Preparation settings: the schema defaults of ``data``, with the history length, training
    samples per user and calibration size these tests were written for, then ``kw``."""
    base = {"history_len": 8, "train_samples_per_user": 2, "n_calibration": 64}
    return settings(PrepareParams, "data", **{**base, **kw})


def _inter(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _items(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"item_id": ids, "title": [f"title {i}" for i in ids],
                         "text": [f"text {i}" for i in ids]})


def test_kcore_needs_two_passes_hand_computed() -> None:
    # A-D rate x, y, z. E rates x, y, w; F rates x, w, v. With k=3:
    # pass 1 drops items w (2 ratings) and v (1): E is left with x, y and F with x;
    # pass 2 drops users E and F; pass 3 removes nothing.
    rows = [(u, i, 5.0, t) for t, (u, i) in enumerate(
        [(u, i) for u in "ABCD" for i in "xyz"]
        + [("E", "x"), ("E", "y"), ("E", "w"), ("F", "x"), ("F", "w"), ("F", "v")])]
    out, stats = kcore_filter(_inter(rows), 3)
    assert stats["kcore_iterations"] == 2
    assert stats["dropped_rows"] == 6
    assert stats["dropped_users"] == 2 and stats["dropped_items"] == 2
    assert sorted(zip(out["user_id"], out["item_id"], strict=True)) == [
        (u, i) for u in "ABCD" for i in "xyz"]


def _tiny() -> tuple[pd.DataFrame, pd.DataFrame]:
    """User u: a(1) x(2 then dup at 9) c(3) d(5) b(5) -> order a x c b d (tie b<d by item_id).

    Users v and w fill the catalogue; one row misses its user, one names an item without text.
    """
    rows = [
        ("u", "a", 5.0, 1), ("u", "x", 4.0, 9), ("u", "c", 3.0, 3), ("u", "d", 2.0, 5),
        ("u", "b", np.nan, 5), ("u", "x", 1.0, 2),
        ("v", "a", 5.0, 1), ("v", "b", 5.0, 2), ("v", "e", 5.0, 3), ("v", "f", 5.0, 4),
        ("w", "e", 4.0, 7), ("w", "f", 4.0, 8), ("w", "g", 4.0, 9), ("w", "h", 4.0, 10),
        (None, "a", 5.0, 11), ("w", "nometa", 5.0, 12),
    ]
    return _inter(rows), _items(list("abcdefghx"))


TINY = _params(kcore=1, history_len=3, n_candidates=3, n_train_candidates=2,
                     train_samples_per_user=2, n_calibration=2, seed=1)


def test_clean_dedup_and_leave_one_out_with_tie() -> None:
    inter, items = _tiny()
    it, df, samples, stats = prepare(inter, items, TINY)
    assert stats["dropped"] == {"missing_fields": 1, "duplicate_user_item": 1,
                                "item_without_text": 1, "kcore": 0}
    # the earliest (u, x) interaction is kept: timestamp 2, rating 1
    ux = df[(df["user_id"] == "u") & (df["item_id"] == "x")]
    assert ux[["rating", "timestamp"]].values.tolist() == [[1.0, 2]]
    assert df["timestamp"].dtype == np.int64
    su = samples[samples["user_id"] == "u"].set_index("split")
    assert su.loc["test", "target"] == "d"  # b and d share timestamp 5: b < d
    assert list(su.loc["test", "history"]) == ["x", "c", "b"]  # history_len 3
    assert su.loc["valid", "target"] == "b"
    assert np.isnan(su.loc["valid", "target_rating"])
    assert list(su.loc["valid", "history"]) == ["a", "x", "c"]
    train = samples[(samples["user_id"] == "u") & (samples["split"] == "train")]
    assert train["target"].tolist() == ["x", "c"]
    assert [list(h) for h in train["history"]] == [["a"], ["a", "x"]]
    assert train["target_rating"].tolist() == [1.0, 3.0]
    assert stats["users_last_two_same_timestamp"] == 1
    assert stats["users"] == 3 and stats["interactions"] == 13
    assert sorted(it["item_id"]) == list("abcdefghx")
    # u (5 items) has train targets at positions 1 and 2; v and w (4 items) only at position 1
    assert stats["samples"] == {"train": 4, "valid": 3, "test": 3, "calibration": 2}


def test_negatives_are_exactly_the_untouched_items_when_just_enough() -> None:
    # u touched a, x, c, b, d of the 9 items: the untouched ones are e, f, g, h
    inter, items = _tiny()
    params = _params(kcore=1, history_len=3, n_candidates=4, n_train_candidates=4,
                           train_samples_per_user=2, n_calibration=0, seed=3)
    _, _, samples, _ = prepare(inter, items, params)
    for _, row in samples[samples["user_id"] == "u"].iterrows():
        assert row["candidates"][0] == row["target"]
        assert sorted(row["candidates"][1:]) == list("efgh")


def test_too_few_untouched_items_raises_naming_user() -> None:
    inter, items = _tiny()
    params = _params(kcore=1, n_candidates=5, n_train_candidates=2, seed=0)
    with pytest.raises(ValueError, match=r"user 'u' .* 5 of 9 items, leaving 4 .* but 5"):
        prepare(inter, items, params)


def test_nothing_left_after_kcore_raises() -> None:
    inter = _inter([("u", "a", 1.0, 1), ("u", "b", 2.0, 2), ("v", "a", 3.0, 3)])
    with pytest.raises(ValueError, match=r"no interactions left after the 5-core"):
        prepare(inter, _items(["a", "b"]), _params())


@pytest.fixture(scope="module")
def synth_prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    raw = tmp_path_factory.mktemp("raw")
    generate(raw, "Synth", n_users=200, n_families=8, items_per_family=20, min_history=6,
             max_history=15, seed=4)
    out = tmp_path_factory.mktemp("processed")
    stats = prepare_dataset(raw, "synthetic", "Synth", _params(n_candidates=50), out)
    return out, stats


def test_prepare_dataset_writes_contract_tables(synth_prepared: tuple) -> None:
    out, stats = synth_prepared
    items = pd.read_parquet(out / "items.parquet")
    inter = pd.read_parquet(out / "interactions.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    assert list(items.columns) == ["item_id", "title", "text"]
    assert list(inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert list(samples.columns) == ["split", "user_id", "history", "target", "target_rating",
                                     "candidates", "valid_half"]
    assert read_json(out / "stats.json") == stats
    assert set(inter["item_id"]) == set(items["item_id"])
    assert inter.groupby("user_id").size().min() >= 5
    assert inter.groupby("item_id").size().min() >= 5
    # seconds, not milliseconds
    assert inter["timestamp"].between(1_546_300_800, 1_704_067_200).all()
    assert stats["samples"]["valid"] == stats["samples"]["test"] == stats["users"]
    assert stats["samples"]["calibration"] == 64


def test_sample_invariants(synth_prepared: tuple) -> None:
    out, _ = synth_prepared
    inter = pd.read_parquet(out / "interactions.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    n_items = inter["item_id"].nunique()
    touched: dict[str, set[str]] = {}
    for u, i in zip(inter["user_id"], inter["item_id"], strict=True):
        touched.setdefault(u, set()).add(i)
    seqs = {u: g.sort_values(["timestamp", "item_id"])["item_id"].tolist()
            for u, g in inter.groupby("user_id")}
    for row in samples.itertuples(index=False):
        cands = list(row.candidates)
        hist = list(row.history)
        assert cands[0] == row.target
        assert len(set(cands)) == len(cands)
        assert len(cands) == 1 + (19 if row.split in ("train", "calibration") else 50)
        assert not set(cands[1:]) & touched[row.user_id]
        assert row.target not in hist
        seq = seqs[row.user_id]
        pos = seq.index(row.target)
        assert hist == seq[max(0, pos - 8): pos] and len(hist) >= 1
        expected_pos = {"test": len(seq) - 1, "valid": len(seq) - 2}.get(row.split)
        if expected_pos is not None:
            assert pos == expected_pos
        else:
            assert len(seq) - 4 <= pos <= len(seq) - 3
    assert n_items >= 51
    train = samples[samples["split"] == "train"]
    cal = samples[samples["split"] == "calibration"]
    key = ["user_id", "target"]
    merged = cal.merge(train, on=key, suffixes=("", "_t"))
    assert len(merged) == len(cal)
    assert all(list(a) == list(b) for a, b in zip(merged["candidates"], merged["candidates_t"],
                                                  strict=True))


def test_deterministic_and_independent_of_input_order(synth_prepared: tuple) -> None:
    out, _ = synth_prepared
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet")
    params = _params(n_candidates=50)
    a = prepare(inter, items, params)[2]
    shuffled = inter.sample(frac=1.0, random_state=0).reset_index(drop=True)
    b = prepare(shuffled, items.iloc[::-1], params)[2]
    pd.testing.assert_frame_equal(a, b)
    c = prepare(inter, items, _params(n_candidates=50, seed=1))[2]
    a, c = a[a["split"] != "calibration"], c[c["split"] != "calibration"]
    assert [list(h) for h in a["history"]] == [list(h) for h in c["history"]]
    assert [list(x) for x in a["candidates"]] != [list(x) for x in c["candidates"]]


def test_max_users_keeps_a_seeded_sample_after_the_kcore(synth_prepared: tuple) -> None:
    out, full_stats = synth_prepared
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet")
    _, df, samples, stats = prepare(inter, items, _params(n_candidates=20, max_users=30))
    assert df["user_id"].nunique() == 30 == stats["max_users"]["users_kept"]
    assert stats["max_users"]["users_before"] == full_stats["users"]
    assert set(samples["user_id"]) == set(df["user_id"])
    # each kept user keeps all its interactions: the sample is of users, not of rows
    kept = inter[inter["user_id"].isin(set(df["user_id"]))]
    assert len(kept) == len(df)
    # the same seed gives the same users; another seed other users
    again = prepare(inter, items, _params(n_candidates=20, max_users=30))[1]
    other = prepare(inter, items, _params(n_candidates=20, max_users=30, seed=1))[1]
    assert set(again["user_id"]) == set(df["user_id"]) != set(other["user_id"])
    # more than there are: everything, recorded
    _, df_all, _, st = prepare(inter, items, _params(n_candidates=20, max_users=10**6))
    assert df_all["user_id"].nunique() == full_stats["users"] == st["max_users"]["users_kept"]


def test_train_samples_per_user_all_takes_every_position(synth_prepared: tuple) -> None:
    out, _ = synth_prepared
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet")
    samples = prepare(inter, items, _params(n_candidates=20, train_samples_per_user="all"))[2]
    train = samples[samples["split"] == "train"]
    lengths = inter.groupby("user_id").size()
    # a user with n interactions: test n-1, valid n-2, train every position 1..n-3
    assert train.groupby("user_id").size().to_dict() == (lengths - 3).to_dict()
    two = prepare(inter, items, _params(n_candidates=20, train_samples_per_user=2))[2]
    assert (two["split"] == "train").sum() == 2 * inter["user_id"].nunique()


def test_validation_users_are_split_once_into_disjoint_stable_halves(synth_prepared: tuple) -> None:
    from layerkd.models.samples import half_rows

    out, stats = synth_prepared
    samples = pd.read_parquet(out / "samples.parquet")
    valid = samples[samples["split"] == "valid"]
    halves = dict(zip(valid["user_id"], valid["valid_half"], strict=True))
    assert set(halves.values()) == {"select", "judge"}
    n = len(halves)
    assert sum(h == "select" for h in halves.values()) == (n + 1) // 2  # ceil(n / 2)
    assert samples.loc[samples["split"] != "valid", "valid_half"].isna().all()
    assert stats["valid_halves"] == {"select": (n + 1) // 2, "judge": n // 2}
    # the same users on a rerun and in any input order; another seed draws other halves
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet")
    again = prepare(inter.sample(frac=1.0, random_state=1), items, _params(n_candidates=50))[2]
    pd.testing.assert_series_equal(again["valid_half"], samples["valid_half"], check_names=False)
    other = prepare(inter, items, _params(n_candidates=50, seed=3))[2]
    assert not other["valid_half"].equals(samples["valid_half"])
    # each stage reads one half: disjoint validation users, every other split whole
    sel, jud = half_rows(samples, "select"), half_rows(samples, "judge")
    vs, vj = (set(h.loc[h["split"] == "valid", "user_id"]) for h in (sel, jud))
    assert vs and vj and not vs & vj and vs | vj == set(halves)
    for h in (sel, jud):
        assert (h["split"] != "valid").sum() == (samples["split"] != "valid").sum()
    with pytest.raises(ValueError, match="rerun prepare_data"):
        half_rows(samples.drop(columns="valid_half"), "select")
