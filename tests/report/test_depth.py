"""The depth sweep: test NDCG@5 against k per series, its plot and its LaTeX table."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkd.report.depth import depth_latex, depth_plot, depth_table
from tests.report.test_plots import check_png
from tests.report.test_tables import make_eval


def _student(name: str, shift: float, seed: int, layers: list[int], *sels: tuple[str, str]):
    return make_eval(name, "student", shift, seed, layers=layers, selections=list(sels))


def sweep():
    """A teacher and, at k = 2 and k = 4, the three baselines, two adaptive students (one
    of them greedy's) each."""
    ev = [make_eval("teacher", "teacher", 2.0, 1), make_eval("popular", "reference", 1.0, 2)]
    for k, base in ((2, 10), (4, 20)):
        lay = list(range(k))
        ev += [
            _student(f"student/F{k}", 0.2, base, lay, ("none", "first_k")),
            _student(f"student/U{k}", 0.3, base + 1, lay,
                     ("none", "uniform")),
            _student(f"student/R{k}", 0.4, base + 2, lay, ("none", "random_search")),
            _student(f"student/A{k}", 1.0, base + 3, lay, ("fisher", "top_k")),
            _student(f"student/G{k}", 1.5, base + 4, lay, ("greedy", "top_k")),
        ]  # fmt: skip
    return ev


def test_one_point_per_k_and_series_with_the_adaptive_chosen_on_validation(tmp_path: Path):
    ev = sweep()
    # on validation the fisher student is better at k = 2, the greedy one at k = 4
    valid = {"student/A2": 0.9, "student/G2": 0.1, "student/A4": 0.1, "student/G4": 0.9}
    t = depth_table(ev, valid)
    assert sorted(t["k"].unique()) == [2, 4]
    series = ["teacher", "first_k", "uniform", "random_search", "adaptive", "greedy"]
    assert t.groupby("k")["series"].apply(list).to_dict() == {2: series, 4: series}
    cell = t.set_index(["k", "series"])
    assert cell.at[(2, "adaptive"), "model"] == "student/A2"
    assert cell.at[(4, "adaptive"), "model"] == "student/G4"
    by_name = {e["model"]: e for e in ev}
    for _, row in cell.iterrows():
        e = by_name[row["model"]]
        assert row["ndcg@5"] == e["metrics"]["ndcg@5"]
        assert [row["lo"], row["hi"]] == pytest.approx(e["ci"]["ndcg@5"])
    assert (cell.xs("teacher", level="series")["model"] == "teacher").all()  # a flat line
    check_png(depth_plot(t, tmp_path / "depth.png"))
    tex = depth_latex(t, "Toy_Set")
    assert tex.count("\\\\") == 3  # header + one row per k
    assert "\n2 & " in tex and "\n4 & " in tex and "Toy\\_Set" in tex


def test_no_depth_table_with_one_k():
    ev = [e for e in sweep() if e["kind"] != "student" or len(e["layers"]) == 2]
    assert depth_table(ev).empty
    assert depth_latex(depth_table(ev)) == ""


def test_a_run_without_random_search_draws_the_random_baseline():
    ev = sweep()
    for e in ev:
        for s in e.get("selections") or []:
            if s["strategy"] == "random_search":
                s["strategy"] = "random"
    t = depth_table(ev)
    assert set(t[t["series"] == "random_search"]["model"]) == {"student/R2", "student/R4"}
