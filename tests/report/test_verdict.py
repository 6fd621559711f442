"""Verdicts under Holm's adjustment over each hypothesis's family of tests."""

from __future__ import annotations

import pandas as pd
import pytest

from layerkd.evaluation.significance import comparison_table
from layerkd.report.hypotheses import h3, reference_check
from layerkd.report.verdict import family_holm
from tests.report.test_tables import make_eval, world


def test_family_holm_by_hand() -> None:
    rows = pd.DataFrame(
        {
            "diff": [0.2, 0.1, -0.3, 0.0],
            "p_bootstrap": [0.01, 0.04, 0.03, 1.0],
            "verdict": ["better", "better", "worse", "same"],
        }
    )
    out = family_holm(rows, "F")
    # m = 3 tests (the model compared with itself is none): 0.01*3 = 0.03; 0.03*2 = 0.06;
    # 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert out["p_holm"].tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert pd.isna(out["p_holm"].iloc[3])
    assert out["verdict"].tolist() == ["better", "ns", "ns", "same"]
    assert out["verdict_raw"].tolist() == rows["verdict"].tolist()
    assert set(out["family"]) == {"F"}


def test_r_uses_holm_over_its_references() -> None:
    ev = world()
    # two references, so R's family holds two tests
    sasrec = make_eval("sasrec", "reference", 0.0, 7)
    cmp = comparison_table([*ev, sasrec], ["ndcg@5"], n_boot=400, seed=0)
    h = reference_check([*ev, sasrec], cmp)
    t = h.table.set_index("reference")
    assert set(t.index) == {"most-popular", "SASRec"}
    assert (t["p_holm"] >= t["p_bootstrap"]).all()
    raw = cmp[(cmp["model"] == "teacher") & (cmp["versus"].isin(["popular", "sasrec"]))]
    expect = sorted(raw["p_bootstrap"])
    assert sorted(t["p_holm"]) == pytest.approx(
        sorted([min(1, 2 * expect[0]), max(min(1, 2 * expect[0]), expect[1])])
    )
    assert h.verdict == ("holds" if (t["verdict"] == "better").all() else "does not hold")


def test_h3_table_keeps_both_p_values_and_adjusts_over_its_baselines() -> None:
    ev = world()
    cmp = comparison_table(ev, ["ndcg@5"], n_boot=400, seed=0)
    h = h3(ev, cmp)
    t = h.table
    assert {"p_bootstrap", "p_holm", "status"} <= set(t.columns)
    m = len(t)
    p = sorted(t["p_bootstrap"])
    assert min(t["p_holm"]) == pytest.approx(min(1.0, m * p[0]))
    assert (t["p_holm"] >= t["p_bootstrap"]).all()
