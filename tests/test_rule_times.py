"""tools/rule_times.py: per-rule totals of a run's benchmark files, by hand and as a script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from rule_times import rule_names, rule_of, rule_times  # noqa: E402

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(run: Path, stem: str, seconds: float) -> None:
    path = run / "results" / "toy" / "benchmarks" / f"{stem}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t1\t1\t1\t1\t0\t0\t1\t1\n")


def test_files_are_grouped_by_their_longest_rule_name(tmp_path):
    names = rule_names(ROOT / "rules")
    assert {"build_student", "distill", "evaluate_student", "layersets", "teacher_cache"} <= set(
        names
    )
    assert rule_of("evaluate_student_L00-01__keep__s2", names) == "evaluate_student"
    assert rule_of("teacher_cache_0", names) == "teacher_cache"
    assert rule_of("select_none__first_k__k8", names) == "select"
    for stem, s in [("distill_L00__keep__s0", 40.0), ("distill_L00__keep__s1", 44.5),
                    ("teacher_cache_0", 30.0), ("report", 5.0)]:  # fmt: skip
        _bench(tmp_path / "a", stem, s)
    t = rule_times(tmp_path / "a", names)
    assert list(t.index) == ["distill", "teacher_cache", "report"]
    assert t.loc["distill"].tolist() == [2, 84.5, 44.5]
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "rule_times.py"), str(tmp_path / "a")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "distill" in out and "84.5" in out and "a 120 s" in out
    with pytest.raises(ValueError, match="no results"):
        rule_times(tmp_path / "empty", names)
