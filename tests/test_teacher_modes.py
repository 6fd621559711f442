"""benchmarks/teacher_modes.py on hand-made evaluation files: the means, the paired difference to
SASRec on the same users (in another user order) and the minutes of the teacher's jobs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "teacher_modes.py"


def _record(model, users, sampled, full, **extra):
    return {"model": model, "user_ids": users, "per_user": {"ndcg@5": sampled},
            "metrics": {"ndcg@5": sum(sampled) / len(sampled)},
            "full": {"per_user": {"ndcg@5": full}, "metrics": {"ndcg@5": sum(full) / len(full)}},
            **extra}  # fmt: skip


def test_one_row_per_run_with_paired_differences(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("teacher_modes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path / "run"
    ev, bench = root / "results/d/eval", root / "results/d/benchmarks"
    ev.mkdir(parents=True)
    bench.mkdir(parents=True)
    users = ["a", "b", "c", "d"]
    teacher = _record("teacher", users, [1.0, 0.5, 0.5, 0.0], [1.0, 0.0, 1.0, 0.5], items="ids",
                      valid={"metrics": {"ndcg@5": 0.4}})  # fmt: skip
    # SASRec's users in another order: d, c, b, a
    sasrec = _record("sasrec", users[::-1], [0.0, 0.5, 0.5, 0.0], [0.5, 1.0, 0.0, 0.0])
    popular = _record("popular", users, [0.1] * 4, [0.0] * 4)
    for name, rec in (("teacher", teacher), ("sasrec", sasrec), ("popular", popular)):
        (ev / f"{name}.json").write_text(json.dumps(rec))
    for job, seconds in (("prepare_teacher", 30), ("finetune_teacher", 90)):
        (bench / f"{job}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:{seconds}\n")
    df = module.main(["--dataset", "d", "--run", f"ids={root}", "--bootstrap", "200"])
    r = df.iloc[0]
    assert r["items"] == "ids" and r["users"] == 4
    assert r["teacher full"] == pytest.approx(0.625) and r["SASRec full"] == pytest.approx(0.375)
    # paired by user (a, b, c, d): full (1 - 0), (0 - 0), (1 - 1), (0.5 - 0.5); sampled
    # (1 - 0), (0.5 - 0.5), (0.5 - 0.5), (0 - 0): no user is worse, so the interval starts at 0
    # (paired by position instead, full would give 0.5, -1, 1, 0.5 and a negative lower end)
    assert r["vs SASRec full"].startswith("+0.2500 [+0.0000,")
    assert r["vs SASRec sampled"].startswith("+0.2500 [+0.0000,")
    assert r["popular sampled"] == pytest.approx(0.1) and r["teacher valid (sampled)"] == 0.4
    assert r["teacher minutes"] == pytest.approx(2.0)  # 30 s + 90 s; no evaluate benchmark
    assert "| run" in capsys.readouterr().out
