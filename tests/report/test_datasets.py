"""Across datasets: importance agreement by hand, verdicts side by side."""

from __future__ import annotations

import pandas as pd
import pytest

from layerkd.io import write_json
from layerkd.report.datasets import datasets_stage


def test_two_datasets_compared(tmp_path):
    scores, hyps = [], []
    for ds, fisher, verdict in (
        ("a", [0.1, 0.2, 0.3, 0.4], "holds"),
        ("b", [0.4, 0.3, 0.2, 0.1], "does not hold"),  # the reverse order: Spearman -1
    ):
        for method, norm in (("fisher", fisher), ("ablation", [0.25, 0.25, 0.1, 0.4])):
            p = tmp_path / "results" / ds / "scores" / f"{method}.json"
            write_json(p, {"method": method, "normalised": norm})
            scores.append(p)
        p = tmp_path / "results" / ds / "report" / "hypotheses.json"
        write_json(p, [{"key": "H1", "title": "upper layers", "verdict": verdict}])
        hyps.append(p)
    out = tmp_path / "results" / "datasets"
    agree = datasets_stage(
        scores=scores, hypotheses=hyps, md=out / "comparison.md",
        csv=out / "importance_spearman.csv", datasets=["a", "b"],
    )  # fmt: skip
    by = agree.set_index("method")["spearman"]
    assert by["fisher"] == pytest.approx(-1.0) and by["ablation"] == pytest.approx(1.0)
    md = (out / "comparison.md").read_text()
    assert "holds" in md and "does not hold" in md and "upper layers" in md
    assert list(pd.read_csv(out / "importance_spearman.csv").columns) == [
        "method",
        "dataset_a",
        "dataset_b",
        "spearman",
    ]
    with pytest.raises(ValueError, match="expected"):
        datasets_stage(scores=scores, hypotheses=hyps, md=out / "x.md", csv=out / "x.csv",
                       datasets=["a", "c"])  # fmt: skip
