"""Rank agreement between methods: hand-checked correlations and the written files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from layerkd.importance.agreement import agreement_stage, correlation_matrix, correlation_table


def test_correlations_by_hand():
    scores = {
        "ablation": np.array([1.0, 2.0, 3.0, 4.0]),
        "fisher": np.array([10.0, 20.0, 30.0, 40.0]),  # same order -> 1, 1
        "angular": np.array([4.0, 3.0, 2.0, 1.0]),  # reversed -> -1, -1
    }
    t = correlation_table(scores)
    assert len(t) == 3  # 3 unordered pairs
    row = t[(t.method_a == "ablation") & (t.method_b == "fisher")].iloc[0]
    assert row.spearman == pytest.approx(1.0) and row.kendall == pytest.approx(1.0)
    row = t[(t.method_a == "ablation") & (t.method_b == "angular")].iloc[0]
    assert row.spearman == pytest.approx(-1.0) and row.kendall == pytest.approx(-1.0)
    m = correlation_matrix(t, sorted(scores), "spearman")
    assert m.loc["fisher", "angular"] == m.loc["angular", "fisher"] == pytest.approx(-1.0)


def test_one_swap_gives_known_values(tmp_path):
    # [1,2,3,4] vs [2,1,3,4]: one discordant pair of 6 -> tau = (5-1)/6 = 2/3;
    # rho = 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/60 = 0.8
    paths = []
    for name, raw in (("fisher", [1, 2, 3, 4]), ("ablation", [2, 1, 3, 4])):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps({"method": name, "raw": raw}))
        paths.append(p)
    out = tmp_path / "validation"
    table = agreement_stage(
        scores=paths,
        csv=out / "correlations.csv",
        md=out / "correlations.md",
        png=out / "spearman.png",
        methods=["fisher", "ablation"],
    )
    assert table.iloc[0].spearman == pytest.approx(0.8)
    assert table.iloc[0].kendall == pytest.approx(2 / 3)
    csv = pd.read_csv(tmp_path / "validation" / "correlations.csv")
    assert list(csv.columns) == ["method_a", "method_b", "spearman", "kendall"]
    assert (tmp_path / "validation" / "spearman.png").read_bytes()[:4] == b"\x89PNG"
