"""Full-catalogue ranking: hand-computed ranks, the excluded history, the protocol switch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layerkd.evaluation.full import as_primary, full_ranks, full_record, seen_items


def test_seen_items_are_every_interaction_but_the_target():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e"]})
    inter = pd.DataFrame(
        {"user_id": ["u1", "u1", "u1", "u2", "u2"], "item_id": ["a", "c", "e", "b", "d"]}
    )
    test = pd.DataFrame({"user_id": ["u1", "u2"], "target": ["e", "d"]})
    targets, seen = seen_items(test, inter, items)
    assert targets.tolist() == [4, 3]
    assert [s.tolist() for s in seen] == [[0, 2], [1]]


def test_full_ranks_by_hand_with_history_masked_and_pessimistic_ties():
    #            a    b    c    d    e
    scores = np.array(
        [
            [0.9, 0.1, 0.8, 0.5, 0.5],  # target e (0.5): a, c seen -> masked; d ties -> rank 2
            [0.2, 0.7, 0.3, 0.6, 0.1],  # target d (0.6): b seen -> masked; nothing above -> 1
        ]
    )
    targets = np.array([4, 3])
    seen = [np.array([0, 2]), np.array([1])]
    ranks = full_ranks(lambda rows: scores[rows], targets, seen, block=1)
    assert ranks.tolist() == [2, 1]
    assert scores[0, 0] == 0.9  # the caller's scores are not modified
    rec = full_record(ranks, 5, bootstrap=20, seed=0)
    assert rec["n_items"] == 5
    assert rec["per_user"]["hr@1"] == [0.0, 1.0]
    assert rec["metrics"]["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert rec["metrics"]["ndcg@5"] == pytest.approx((1 / np.log2(3) + 1) / 2)


def test_as_primary_swaps_the_protocol_and_keeps_the_other():
    sampled = {"metrics": {"ndcg@5": 0.5}, "ci": {"ndcg@5": [0.4, 0.6]}, "per_user": {"x": [1]}}
    full = {"metrics": {"ndcg@5": 0.1}, "ci": {"ndcg@5": [0.0, 0.2]}, "per_user": {"x": [0]}}
    rec = {"model": "m", **sampled, "full": full}
    f = as_primary(rec, "full")
    assert f["metrics"] == full["metrics"] and f["per_user"] == full["per_user"]
    assert f["protocol"] == "full" and f["other"]["metrics"] == sampled["metrics"]
    s = as_primary(rec, "sampled")
    assert s["metrics"] == sampled["metrics"] and s["other"] is full
    with pytest.raises(ValueError, match="no full-ranking"):
        as_primary({"model": "old", **sampled}, "full")
    assert as_primary({"model": "old", **sampled}, "sampled")["other"] is None
    # the validation record follows the primary protocol when it holds both
    valid = {"metrics": {"ndcg@5": 0.7}, "per_user": {"x": [1]}, "protocol": "sampled",
             "full": {"metrics": {"ndcg@5": 0.2}, "per_user": {"x": [0]}}}  # fmt: skip
    v = as_primary({**rec, "valid": valid}, "full")["valid"]
    assert v["metrics"] == {"ndcg@5": 0.2} and v["protocol"] == "full"
    assert as_primary({**rec, "valid": valid}, "sampled")["valid"] is valid
