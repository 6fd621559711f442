"""The report's figures: each is a readable PNG of a sensible size, drawn from plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from layerkd.report.pareto import reference_bands
from layerkd.report.plots import (
    correlation_heatmap,
    importance_heatmap,
    pareto_plot,
    selection_map,
    training_curve,
    write_plots,
)
from tests.report.test_tables import world

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scores(n_layers: int) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(0)
    out = {}
    for m in ("fisher", "gradient", "taylor"):
        v = rng.random(n_layers) * np.linspace(0.5, 3.0, n_layers)
        out[m] = {"method": m, "n_layers": n_layers, "normalised": (v / v.sum()).tolist()}
    return out


def selections(n_layers: int, k: int) -> list[dict[str, Any]]:
    sel = []
    picks = {
        ("fisher", "top_k"): list(range(n_layers - k, n_layers)),
        ("gradient", "strategic"): [0, *range(n_layers - k + 1, n_layers)],
        ("none", "first_k"): list(range(k)),
        ("none", "uniform"): np.linspace(0, n_layers - 1, k).round().astype(int).tolist(),
    }
    for (m, s), layers in picks.items():
        name = "L" + "-".join(f"{x:02d}" for x in layers)
        sel.append({"method": m, "strategy": s, "repeat": 0, "k": k, "n_layers": n_layers,
                    "layers": layers, "layerset": name})  # fmt: skip
    return sel


def student_log() -> pd.DataFrame:
    rows = [{"epoch": 0, "step": 0, "valid_ndcg@5": 0.1}]
    for step in range(1, 11):
        rows.append({"epoch": 1 + (step > 5), "step": step, "total": 3 - 0.1 * step,
                     "task": 2 - 0.05 * step, "kd": 1 - 0.05 * step, "hidden": 0.2,
                     "rating": 1.5})  # fmt: skip
    rows += [{"epoch": 1, "step": 5, "valid_ndcg@5": 0.2}, {"epoch": 2, "step": 10,
             "valid_ndcg@5": 0.25}]  # fmt: skip
    return pd.DataFrame(rows)


def check_png(path: Path, min_px: int = 300) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    h, w = matplotlib.image.imread(path).shape[:2]
    assert w >= min_px and h >= 150


@pytest.mark.parametrize("n_layers", [4, 30])
def test_importance_and_selection(tmp_path: Path, n_layers: int) -> None:
    check_png(importance_heatmap(scores(n_layers), tmp_path / "imp.png"))
    k = max(2, n_layers // 4)
    sels = selections(n_layers, k)
    notes = {sels[0]["layerset"]: {"keep": 0.3, "compact": 0.25}}
    check_png(selection_map(sels, tmp_path / "sel.png", notes))


def test_pareto_and_curves(tmp_path: Path) -> None:
    check_png(pareto_plot(world(), tmp_path / "pareto.png"))
    teacher_log = pd.DataFrame(
        {"epoch": [0, 1, 1, 1], "step": [0, 1, 2, 2], "loss": [np.nan, 3.0, 2.5, np.nan],
         "valid_ndcg@5": [0.1, np.nan, np.nan, 0.3]}
    )  # fmt: skip
    check_png(training_curve(teacher_log, tmp_path / "t.png", "teacher"))
    check_png(training_curve(student_log(), tmp_path / "s.png", "student", teacher_valid=0.3))


def test_pareto_draws_sasrec_beside_most_popular_and_random():
    evals = world()
    sasrec = next(e for e in evals if e["model"] == "popular") | {"model": "sasrec"}
    sasrec = sasrec | {
        "metrics": {**sasrec["metrics"], "ndcg@5": 0.5},
        "ci": {"ndcg@5": [0.4, 0.6]},
    }
    bands = reference_bands([*evals, sasrec])
    assert [b[0] for b in bands] == ["popular", "sasrec"] + (
        ["random"] if any(e["model"] == "random" for e in evals) else []
    )
    assert bands[1] == ("sasrec", 0.5, 0.4, 0.6)
    assert [b[0] for b in reference_bands(evals)] == [b[0] for b in bands if b[0] != "sasrec"]


def test_correlations_only_with_validation(tmp_path: Path) -> None:
    val = pd.DataFrame(
        {"method_a": ["ablation", "ablation", "fisher"], "method_b": ["fisher", "gradient",
         "gradient"], "spearman": [0.8, -0.2, 0.1], "kendall": [0.6, -0.1, 0.05]}
    )  # fmt: skip
    check_png(correlation_heatmap(val, tmp_path / "c.png"))
    log_path = tmp_path / "students" / "L03-07" / "train_log.parquet"
    log_path.parent.mkdir(parents=True)
    student_log().to_parquet(log_path)
    common = {"evals": world(), "scores": scores(8), "selections": selections(8, 2),
              "train_logs": [log_path]}  # fmt: skip
    names = {p.name for p in write_plots(tmp_path / "a", **common)}
    assert names == {"pareto.png", "importance.png", "selection.png", "curve_L03-07.png"}
    names = {p.name for p in write_plots(tmp_path / "b", validation=val, **common)}
    assert "correlations.png" in names
