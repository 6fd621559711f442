"""The report's screen validity (S) and under-training gate (T) on records with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from layerkd.evaluation.metrics import RANKING_KEYS
from layerkd.evaluation.significance import comparison_table
from layerkd.report.gate import teacher_gate
from layerkd.report.hypotheses import hypotheses
from layerkd.report.screen import screen_check, screen_table, screen_validity
from tests.report.test_tables import make_eval, world


def _student(name: str, layerset: str, ndcg: float) -> dict:
    return {"model": name, "kind": "student", "mode": "keep", "layerset": layerset,
            "metrics": {"ndcg@5": ndcg}}  # fmt: skip


def test_screen_correlations_by_hand(tmp_path):
    pd.DataFrame(
        {
            "layerset": ["A", "B", "C", "D"],
            "selections": ["fisher/top_k", "none/first_k", "gradient/top_k", "taylor/top_k"],
            "score_step0": [0.1, 0.3, 0.2, 0.4],
            "score_step5": [0.5, 0.4, 0.3, 0.2],
            "seconds": [1.0] * 4,
            "screen_score": [0.5, 0.4, 0.3, 0.2],
            "rank": [1, 2, 3, 4],
        }
    ).to_csv(tmp_path / "k2.csv", index=False)
    evals = [_student("student/A", "A", 0.6), _student("student/B", "B", 0.2),
             _student("student/C", "C", 0.4)]  # fmt: skip
    valid = {"student/A": 0.30, "student/B": 0.10, "student/C": 0.20}
    table = screen_table([tmp_path / "k2.csv"], evals, valid)
    assert list(table["distilled"]) == [True, True, True, False]  # D was not distilled
    assert math.isnan(table.loc[3, "valid_ndcg@5"])
    val = screen_validity(table).set_index(["screen", "versus"])
    # screen ranks (3, 2, 1) vs validation ranks (3, 1, 2): d = (0, 1, -1), rho = 1 - 6*2/24
    last = val.loc[("score_step5", "valid_ndcg@5")]
    assert last["n_sets"] == 3
    assert last["spearman"] == pytest.approx(0.5)
    assert last["kendall"] == pytest.approx(1 / 3)  # 2 concordant pairs, 1 discordant
    # step 0 (0.1, 0.3, 0.2) against test (0.6, 0.2, 0.4): exactly reversed ranks
    assert val.loc[("score_step0", "ndcg@5"), "spearman"] == pytest.approx(-1.0)
    h = screen_check(table, screen_validity(table))
    assert h.verdict == "does not hold"  # rho 0.5 on 3 sets is not significant
    assert any("Spearman +0.500" in n for n in h.notes)


def test_screen_is_untestable_on_fewer_than_three_distilled_sets(tmp_path):
    pd.DataFrame(
        {"layerset": ["A", "B"], "score_step0": [0.2, 0.1], "screen_score": [0.2, 0.1],
         "rank": [1, 2]}
    ).to_csv(tmp_path / "k4.csv", index=False)  # fmt: skip
    evals = [_student("student/A", "A", 0.6), _student("student/B", "B", 0.2)]
    table = screen_table([tmp_path / "k4.csv"], evals, {})
    assert list(table["k"]) == [4, 4]
    assert screen_check(table, screen_validity(table)).verdict == "untestable"
    assert screen_check(pd.DataFrame(), screen_validity(pd.DataFrame())).verdict == "untestable"


def _with_valid(rec: dict, shift: float, seed: int) -> dict:
    """``rec`` with validation metrics of a model ``shift`` above the negatives."""
    v = make_eval(rec["model"], rec["kind"], shift, seed)
    return {**rec, "valid": {k: v[k] for k in ("model", "user_ids", "metrics", "per_user")}}


def test_a_student_above_the_teacher_on_validation_flags_it_and_r_fails():
    evals = world()
    cmp = comparison_table(evals, RANKING_KEYS, n_boot=300, seed=0)
    fine = [_with_valid(e, 1.0, 10) if e["kind"] == "teacher" else e for e in evals]
    fine = [_with_valid(e, 0.5, 20 + i) if e["kind"] == "student" else e
            for i, e in enumerate(fine)]  # fmt: skip
    gate = teacher_gate(fine, n_boot=300, seed=0)
    assert gate.verdict == "holds"
    assert set(gate.table["verdict"]) == {"worse"}
    r = hypotheses(fine, {}, cmp, None, n_boot=300, seed=0)[1]
    assert r.key == "R" and r.verdict == "holds"  # the teacher beats most-popular
    under = [_with_valid(e, 2.5, 99) if e["model"] == "student/A" else e for e in fine]
    gate = teacher_gate(under, n_boot=300, seed=0)
    assert gate.verdict == "does not hold"
    assert gate.table.set_index("model").at["student/A", "verdict"] == "better"
    assert any("UNDER-TRAINED" in n and "student/A" in n for n in gate.notes)
    hyps = hypotheses(under, {}, cmp, None, n_boot=300, seed=0)
    assert [h.key for h in hyps][:2] == ["T", "R"] and hyps[1].verdict == "does not hold"


def test_the_gate_is_untestable_without_validation_metrics():
    assert teacher_gate(world(), n_boot=100, seed=0).verdict == "untestable"


def test_pooled_seeds_pool_their_validation_metrics_user_by_user():
    from layerkd.evaluation.significance import pool_seeds

    seeds = []
    for s in range(2):
        e = make_eval(f"student/L05-07__keep__s{s}", "student", 2.0, 40 + s, layers=[5, 7],
                      selections=[("fisher", "top_k")]) | {"seed": s}  # fmt: skip
        v = _with_valid(e, 1.0 + s, 50 + s)["valid"]
        if s == 1:  # the same users in another order: pooling pairs them by user id
            order = list(reversed(range(len(v["user_ids"]))))
            per_user = {m: [x[i] for i in order] for m, x in v["per_user"].items()}
            v = {**v, "user_ids": [v["user_ids"][i] for i in order], "per_user": per_user}
        seeds.append(e | {"valid": v})
    (pooled,) = pool_seeds(seeds, n_boot=50, seed=0)
    a, b = seeds[0]["valid"], seeds[1]["valid"]
    pos = {u: i for i, u in enumerate(b["user_ids"])}
    want = [(x + b["per_user"]["ndcg@5"][pos[u]]) / 2
            for u, x in zip(a["user_ids"], a["per_user"]["ndcg@5"], strict=True)]  # fmt: skip
    assert pooled["valid"]["user_ids"] == a["user_ids"]
    assert pooled["valid"]["per_user"]["ndcg@5"] == pytest.approx(want)
    assert pooled["valid"]["metrics"]["ndcg@5"] == pytest.approx(sum(want) / len(want))
    # the gate counts, per seed, whether the student is above the teacher on validation
    assert pooled["valid"]["seed_metrics"] == {str(s): seeds[s]["valid"]["metrics"] for s in (0, 1)}
    teacher = _with_valid(make_eval("teacher", "teacher", 2.0, 1), 1.5, 60)
    row = teacher_gate([teacher, pooled], n_boot=50, seed=0).table.iloc[0]
    t_valid = teacher["valid"]["metrics"]["ndcg@5"]
    want_above = sum(seeds[s]["valid"]["metrics"]["ndcg@5"] > t_valid for s in (0, 1))
    assert (row["seeds"], row["seeds_above"]) == (2, want_above)
