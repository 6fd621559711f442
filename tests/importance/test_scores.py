"""Scores from calibration statistics, selections, and the layer-set dedupe."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from layerkd.importance.scores import hybrid_scores, raw_scores, score_stage
from layerkd.selection.stages import layersets_stage, select_stage
from layerkd.teacher.cache import block_distances


def _stats(tmp_path, n=4):
    arrays = {
        "sum_fisher": np.array([4.0, 8.0, 2.0, 6.0]),
        "sum_gradient": np.array([1.0, 1.0, 3.0, 3.0]),
        "sum_taylor": np.array([-8.0, 4.0, 0.4, -1.0]),
        "sum_block_influence": np.array([0.4, 0.8, 0.4, 0.4]),
        "sum_angular": np.array([0.4, 0.4, 0.8, 0.4]),
    }
    path = tmp_path / "cache_stats.npz"
    np.savez(path, n=np.array(n), angular_distance=np.zeros((5, 5)), **arrays)
    return path


def test_raw_scores_are_means_and_taylor_is_absolute(tmp_path):
    from layerkd.importance.scores import load_stats

    stats = load_stats(_stats(tmp_path))
    assert raw_scores(stats, "fisher").tolist() == [1.0, 2.0, 0.5, 1.5]
    assert raw_scores(stats, "taylor").tolist() == [2.0, 1.0, 0.1, 0.25]
    with pytest.raises(ValueError, match="ablation"):
        raw_scores(stats, "ablation")


def test_score_file_normalises_and_reports_concentration(tmp_path):
    rec = score_stage(
        stats=_stats(tmp_path), scores=tmp_path / "fisher.json", method="fisher", hybrid_weights={}
    )
    # normalised = [1, 2, .5, 1.5] / 5; quarter = 1 layer: top 0.4 / bottom 0.1 = 4
    assert rec["normalised"] == pytest.approx([0.2, 0.4, 0.1, 0.3])
    assert rec["concentration_ratio"] == pytest.approx(4.0)
    assert json.loads((tmp_path / "fisher.json").read_text())["raw"] == [1.0, 2.0, 0.5, 1.5]


def test_hybrid_is_weighted_sum_of_normalised_scores(tmp_path):
    norm = {
        "fisher": np.array([0.2, 0.4, 0.1, 0.3]),
        "gradient": np.array([0.125, 0.125, 0.375, 0.375]),
    }
    got = hybrid_scores(norm, {"fisher": 0.5, "gradient": 0.5, "attention": 0.0})
    assert got == pytest.approx([0.1625, 0.2625, 0.2375, 0.3375])
    rec = score_stage(
        stats=_stats(tmp_path),
        scores=tmp_path / "h.json",
        method="hybrid",
        hybrid_weights={"fisher": 0.5, "gradient": 0.5, "attention": 0.0},
    )
    assert rec["raw"] == pytest.approx(got.tolist())
    with pytest.raises(ValueError, match="attention"):
        hybrid_scores(norm, {"attention": 1.0})


def test_block_distances_by_hand():
    # two samples, states h0..h2 in 2-D: angles 0, 90, 180 degrees -> 0, 0.5, 1
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]] * 2)
    d = block_distances(s)
    assert d[0, 1] == pytest.approx(0.5) and d[0, 2] == pytest.approx(1.0)
    assert d[1, 2] == pytest.approx(0.5) and d[2, 2] == pytest.approx(0.0, abs=1e-6)
    assert math.isclose(d[1, 0], d[0, 1])


def _layersets(paths, out):
    return layersets_stage(
        selections=paths, every_selection=paths, layersets=out, distilled=[p.stem for p in paths]
    )


def test_layerset_dedupe_gives_one_student_per_distinct_set(tmp_path):
    stats = _stats(tmp_path)
    score_stage(stats=stats, scores=tmp_path / "fisher.json", method="fisher", hybrid_weights={})
    paths = []
    for method, strategy in [
        ("fisher", "top_k"),
        ("none", "first_k"),
        ("none", "last_k"),
        ("none", "uniform"),
    ]:
        p = tmp_path / f"{method}__{strategy}__k2.json"
        select_stage(
            scores=[tmp_path / "fisher.json"] if method != "none" else [],
            stats=stats,
            selection=p,
            name=p.stem,
            seed=0,
        )
        paths.append(p)
    # fisher top_k = layers 1, 3 (scores 2.0, 1.5); first_k = 0, 1; last_k = 2, 3; uniform = 0, 3
    groups = _layersets(paths, tmp_path / "layersets")
    assert sorted(groups) == ["L00-01", "L00-03", "L01-03", "L02-03"]
    # now two strategies that agree: fisher top_k twice under different names
    dup = tmp_path / "fisher__strategic__k2.json"
    select_stage(
        scores=[tmp_path / "fisher.json"], stats=stats, selection=dup, name=dup.stem, seed=0
    )  # strategic with k=2 keeps first and last: 0, 3
    groups = _layersets([*paths, dup], tmp_path / "layersets2")
    assert len(groups) == 4  # 5 selections, 4 distinct layer sets -> 4 students
    assert {(s["method"], s["strategy"]) for s in groups["L00-03"]} == {
        ("none", "uniform"),
        ("fisher", "strategic"),
    }
    files = sorted(p.name for p in (tmp_path / "layersets2").iterdir())
    assert files == ["L00-01.json", "L00-03.json", "L01-03.json", "L02-03.json"]


def test_upper_lower_ratio_is_by_depth():
    from layerkd.importance.scores import upper_lower_ratio

    # 8 layers, quarter = 2: bottom [0.05, 0.05] mean 0.05, top [0.2, 0.3] mean 0.25 -> 5
    norm = np.array([0.05, 0.05, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3])
    assert upper_lower_ratio(norm) == pytest.approx(5.0)
    assert upper_lower_ratio(norm[::-1]) == pytest.approx(0.2)
