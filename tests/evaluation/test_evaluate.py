"""Per-user rating errors and their intervals."""

from __future__ import annotations

import numpy as np
import pytest

from layerkd.evaluation.evaluate import rating_detail


def test_rating_detail_by_hand():
    pred = np.array([4.0, 2.6, 5.0, 3.0])
    true = np.array([5.0, 3.0, np.nan, 3.0])
    d = rating_detail(pred, true, ["a", "b", "c", "d"], bootstrap=200, seed=0)
    assert d["user_ids_rated"] == ["a", "b", "d"]  # c has no rating
    assert d["rating_per_user"]["sq_err"] == pytest.approx([1.0, 0.16, 0.0])
    assert d["rating_per_user"]["abs_err"] == pytest.approx([1.0, 0.4, 0.0])
    # rounded: 4 vs 5 wrong, 3 vs 3 right, 3 vs 3 right
    assert d["rating_per_user"]["correct"] == [0.0, 1.0, 1.0]
    lo, hi = d["rating_ci"]["rmse"]
    assert 0.0 <= lo <= np.sqrt(np.mean([1.0, 0.16, 0.0])) <= hi <= 1.0


def test_no_ratings_gives_no_detail():
    d = rating_detail(np.array([3.0]), np.array([np.nan]), ["a"], bootstrap=10, seed=0)
    assert d["rating_per_user"] is None and d["user_ids_rated"] == []


def test_the_validation_record_judges_on_the_judge_half_only(tmp_path):
    """The report's validation numbers come from the judge half of the validation users (the
    select half stopped the training runs), under both protocols."""
    import pandas as pd
    import torch

    from layerkd.evaluation.evaluate import valid_record
    from layerkd.evaluation.metrics import ranking_metrics
    from layerkd.models.recmodel import load_recmodel
    from layerkd.models.samples import load_split
    from layerkd.models.train import score_split
    from tests.student.test_build import make_workspace

    ws = make_workspace(tmp_path)
    items, samples = pd.read_parquet(ws["items"]), pd.read_parquet(ws["samples"])
    tests = samples[samples["split"] == "valid"].assign(split="test", valid_half=None)
    frame = pd.concat([samples, tests], ignore_index=True)
    net, tok, _ = load_recmodel(ws["teacher"], torch.load(ws["features"])["features"])
    inter = pd.DataFrame(
        [(u, i) for u, h in zip(samples["user_id"], samples["history"], strict=True) for i in h],
        columns=["user_id", "item_id"],
    ).drop_duplicates()
    rec = valid_record(net, frame, items, tok, 64, 8, "teacher", interactions=inter)
    valid = samples[samples["split"] == "valid"]
    judge = valid[valid["valid_half"] == "judge"]
    assert rec["user_ids"] == judge["user_id"].tolist() and rec["half"] == "judge"
    assert not set(rec["user_ids"]) & set(valid.loc[valid["valid_half"] == "select", "user_id"])
    hand = ranking_metrics(score_split(net, load_split(judge, items, tok, "valid", 64), 8)[0])
    np.testing.assert_allclose(rec["per_user"]["ndcg@5"], hand["ndcg@5"])
    # full ranking ranks the target among a superset of its candidates: never better per user
    for f, s in zip(rec["full"]["per_user"]["mrr"], rec["per_user"]["mrr"], strict=True):
        assert f <= s + 1e-12
