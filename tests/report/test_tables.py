"""Report-level checks on constructed eval records whose answers are known."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from layerkd.evaluation.metrics import RANKING_KEYS
from layerkd.evaluation.reference import eval_record
from layerkd.evaluation.significance import comparison_table, holm, paired_arrays, pool_seeds
from layerkd.evaluation.stats import two_level_ci
from layerkd.importance.scores import upper_lower_ratio
from layerkd.io import write_json
from layerkd.report.hypotheses import h1, h2, h3
from layerkd.report.tables import (
    ReportInputs,
    attach_selections,
    summary_rows,
    to_markdown,
    validation_scores,
    write_report,
)

N_USERS, N_CAND, L = 300, 20, 8
USERS = [f"u{i}" for i in range(N_USERS)]


def make_eval(
    name: str,
    kind: str,
    shift: float,
    seed: int,
    *,
    layers: list[int] | None = None,
    selections: list[tuple[str, str]] = (),
    digest: str = "d0",
) -> dict[str, Any]:
    """An eval record whose target sits ``shift`` standard deviations above the negatives:
    the larger ``shift``, the better the model (0 is a random ranker)."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(N_USERS, N_CAND))
    scores[:, 0] += shift
    extra: dict[str, Any] = {"params": 0}
    if kind != "reference":
        layers = layers if layers is not None else list(range(L))
        extra = {
            "layers": layers,
            "layerset": "L" + "-".join(f"{x:02d}" for x in layers) if kind == "student" else None,
            "mode": "keep" if kind == "student" else None,
            "selections": [
                {"method": m, "strategy": s.split("-")[0], "repeat": 0} for m, s in selections
            ]
            or None,
            "teacher_layers": L,
            "params": 1000 * (len(layers) + 2),
            "latency_ms_b1": 1.0 * len(layers),
            "throughput_users_s": 100.0 / len(layers),
            "rating": {"rmse": 1.0, "accuracy": 0.3},
        }
    return eval_record(name, kind, scores, USERS, digest, bootstrap=200, seed=0, extra=extra)


def world(**student_shifts: float) -> list[dict[str, Any]]:
    """Teacher (strong), popular (medium), random, an adaptive student and three baselines."""
    s = {"adaptive": 2.0, "first_k": 0.3, "uniform": 0.3, "random": 0.3} | student_shifts
    return [
        make_eval("teacher", "teacher", 2.0, 1),
        make_eval("popular", "reference", 1.0, 2),
        make_eval("random", "reference", 0.0, 3),
        make_eval("student/A", "student", s["adaptive"], 4, layers=[5, 7],
                  selections=[("fisher", "top_k")]),
        make_eval("student/F", "student", s["first_k"], 5, layers=[0, 1],
                  selections=[("none", "first_k")]),
        make_eval("student/U", "student", s["uniform"], 6, layers=[0, 7],
                  selections=[("none", "uniform")]),
        make_eval("student/R", "student", s["random"], 7, layers=[2, 4],
                  selections=[("none", "random")]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def evals() -> list[dict[str, Any]]:
    return world()


@pytest.fixture(scope="module")
def cmp(evals: list[dict[str, Any]]) -> pd.DataFrame:
    return comparison_table(evals, RANKING_KEYS, n_boot=300, seed=0)


def test_worse_student_marked_and_below_popular_flagged(evals, cmp) -> None:
    df = summary_rows(evals, cmp).drop_duplicates("model").set_index("model")
    assert df.at["student/F", "sig_vs_teacher"] == "worse"
    assert df.at["student/F", "p_vs_teacher"] < 0.01
    assert df.at["student/F", "flag"] == "does not beat most-popular"
    assert df.at["student/A", "sig_vs_teacher"] == "ns"  # same strength as the teacher
    assert df.at["student/A", "sig_vs_popular"] == "better"
    assert df.at["student/A", "flag"] == ""
    assert df.at["teacher", "flag"] == ""
    assert df.at["student/A", "retention"] == pytest.approx(
        evals[3]["metrics"]["ndcg@5"] / evals[0]["metrics"]["ndcg@5"]
    )
    assert df.at["student/A", "speedup"] == pytest.approx(8 / 2)
    md = to_markdown(summary_rows(evals, cmp), [])
    assert "▼" in md and "does not beat most-popular" in md


def test_comparisons_cover_teacher_references_and_baselines(cmp) -> None:
    pairs = set(zip(cmp["model"], cmp["versus"], strict=True))
    assert {("teacher", "popular"), ("teacher", "random")} <= pairs
    for s in ("student/A", "student/F", "student/U", "student/R"):
        for v in ("teacher", "popular", "first_k", "uniform", "random-0"):
            assert (s, v) in pairs
    same = cmp[(cmp["model"] == "student/F") & (cmp["versus"] == "first_k")]
    assert (same["verdict"] == "same").all() and (same["p_holm"] == 1.0).all()
    assert (cmp["p_holm"] >= cmp["p_bootstrap"] - 1e-12).all()


def test_h3_holds_when_adaptive_clearly_better(evals, cmp) -> None:
    h = h3(evals, cmp)
    assert h.verdict == "holds"
    assert set(h.table["status"]) == {"holds"}
    assert (h.table["p_bootstrap"] < 0.05).all()


def test_h3_untestable_when_k_is_not_quarter_and_partly_when_baseline_missing() -> None:
    ev = world()
    for e in ev:
        if e["kind"] != "reference":
            e["teacher_layers"] = 16  # k = 2 is not 16/4
    h = h3(ev, comparison_table(ev, ["ndcg@5"], n_boot=200, seed=0))
    assert h.verdict == "untestable"
    assert any("No k run is L/4" in n for n in h.notes)
    ev = [e for e in world() if e["model"] != "student/R"]
    h = h3(ev, comparison_table(ev, ["ndcg@5"], n_boot=200, seed=0))
    assert h.verdict == "partly"
    assert "missing" in set(h.table["status"])


def test_h3_does_not_hold_when_baseline_as_good() -> None:
    ev = world(uniform=2.5)
    h = h3(ev, comparison_table(ev, ["ndcg@5"], n_boot=200, seed=0))
    assert h.verdict == "does not hold"
    assert h.table.set_index("baseline").at["uniform", "status"] == "does not hold"


def test_h1_depth_ratio() -> None:
    up = np.r_[np.full(2, 1.0), np.full(4, 2.0), np.full(2, 5.0)]
    flat = np.ones(8)
    scores = {
        m: {"n_layers": 8, "normalised": (v / v.sum()).tolist(), "concentration_ratio": 1.0}
        for m, v in (("fisher", up), ("gradient", flat))
    }
    assert upper_lower_ratio(scores["fisher"]["normalised"]) == pytest.approx(5.0)
    h = h1(scores)
    assert h.verdict == "partly"
    assert h.table.set_index("method")["in_claimed_range"].to_dict() == {
        "fisher": True,
        "gradient": False,
    }
    assert any("not 32" in n for n in h.notes)
    assert h1({}).verdict == "untestable"


def test_h1_interval_over_calibration_samples() -> None:
    from layerkd.importance.scores import ratio_interval

    rng = np.random.default_rng(0)
    rows = rng.random((20, 8)) * np.linspace(1, 4, 8)  # 20 samples, importance rising with depth
    stats = {"n": np.array(20), "rows_fisher": rows, "rows_gradient": rows[:, ::-1].copy()}
    lo, hi = ratio_interval(stats, "fisher", n_boot=300, seed=0)
    # slow reference: the same draws, the ratio by hand (quarters of 2 layers)
    draws = np.random.default_rng([0, 20])
    ref = []
    for _ in range(300):
        m = rows[draws.integers(0, 20, size=20)].mean(0)
        ref.append(m[-2:].mean() / m[:2].mean())
    assert [lo, hi] == pytest.approx(list(np.quantile(ref, [0.025, 0.975])))
    point = upper_lower_ratio(rows.mean(0) / rows.mean(0).sum())
    assert lo < point < hi
    same = {"n": np.array(5), "rows_fisher": np.tile(rows[0], (5, 1))}
    assert ratio_interval(same, "fisher", n_boot=50) == pytest.approx(
        [upper_lower_ratio(rows[0])] * 2
    )
    # hybrid: of its components; taylor and methods without rows: none
    w = {"fisher": 0.5, "gradient": 0.5, "attention": 0.0}
    assert ratio_interval(stats, "hybrid", w, n_boot=50) is not None
    assert ratio_interval(stats, "taylor") is None
    scores = {"fisher": {"n_layers": 8, "normalised": (rows.mean(0) / rows.mean(0).sum()).tolist(),
                         "upper_lower_ci": [lo, hi]}}  # fmt: skip
    t = h1(scores).table.set_index("method")
    assert (t.at["fisher", "ratio_lo"], t.at["fisher", "ratio_hi"]) == (lo, hi)


def test_quarters_for_any_number_of_layers() -> None:
    from layerkd.importance.scores import concentration_ratio, quarter_weights

    assert quarter_weights(8).tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert quarter_weights(6).tolist() == [1, 0.5, 0, 0, 0, 0]  # a quarter is 1.5 layers
    assert quarter_weights(30).sum() == pytest.approx(7.5)
    # L = 6: lower quarter (1*1 + 0.5*2) / 1.5 = 4/3, upper (1*6 + 0.5*5) / 1.5 = 17/3
    v = np.arange(1.0, 7.0)
    assert upper_lower_ratio(v / v.sum()) == pytest.approx(17 / 4)
    assert concentration_ratio(np.array([6.0, 1, 5, 2, 4, 3]) / 21) == pytest.approx(17 / 4)
    assert upper_lower_ratio(np.ones(30) / 30) == pytest.approx(1.0)


def test_h2_with_and_without_validation(evals, cmp) -> None:
    assert h2(evals, None, n_boot=100, seed=0).verdict == "untestable"
    val = pd.DataFrame(
        {
            "method_a": ["ablation", "gradient", "fisher"],
            "method_b": ["fisher", "ablation", "gradient"],
            "spearman": [0.9, 0.2, 0.3],
            "kendall": [0.8, 0.1, 0.2],
        }
    )
    weak = make_eval("student/G", "student", 0.5, 9, layers=[3, 4],
                     selections=[("gradient", "top_k")])  # fmt: skip
    h = h2([*evals, weak], val, n_boot=100, seed=0)
    assert h.verdict == "holds" and any("Closest to ablation: fisher" in n for n in h.notes)
    assert h2(evals, val, n_boot=100, seed=0).verdict == "partly"  # fisher is alone
    val["spearman"] = [0.1, 0.9, 0.3]  # gradient closest
    assert h2(evals, val, n_boot=100, seed=0).verdict == "untestable"  # gradient: no student
    assert h2([*evals, weak], val, n_boot=100, seed=0).verdict == "does not hold"


def test_pairing_follows_user_ids() -> None:
    a, b = make_eval("a", "reference", 1.0, 1), make_eval("b", "reference", 1.0, 2)
    perm = np.random.default_rng(0).permutation(N_USERS)
    shuffled = dict(b, user_ids=[b["user_ids"][i] for i in perm])
    shuffled["per_user"] = {k: [v[i] for i in perm] for k, v in b["per_user"].items()}
    x1, y1 = paired_arrays(a, b, "mrr")
    x2, y2 = paired_arrays(a, shuffled, "mrr")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match="same users"):
        paired_arrays(a, dict(b, user_ids=["x"] + b["user_ids"][1:]), "mrr")


def test_holm_known_values() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])


def test_different_candidates_rejected(evals, cmp) -> None:
    bad = [*evals[:-1], dict(evals[-1], candidates_sha256="other")]
    with pytest.raises(ValueError, match="different test candidates"):
        summary_rows(bad, cmp)


def test_report_stage_writes_everything(tmp_path: Path, evals) -> None:
    paths = []
    for e in evals:
        p = tmp_path / "eval" / f"{e['model'].replace('/', '_')}.json"
        write_json(p, e)
        paths.append(p)
    out = tmp_path / "report"
    df = write_report(ReportInputs(evals=paths), out, plots_dir=out / "plots", n_boot=100)
    for name in ("summary.csv", "summary.md", "summary.json", "summary.html", "summary.tex"):
        text = (out / name).read_text()
        assert all(e["model"] in text for e in evals), name
    rows = json.loads((out / "summary.json").read_text(), parse_constant=_no_nan)
    assert len(rows) == len(df) == len(evals)
    assert {r["model"] for r in rows} == {e["model"] for e in evals}
    hyps = json.loads((out / "hypotheses.json").read_text(), parse_constant=_no_nan)
    assert [h["key"] for h in hyps] == ["T", "R", "H1", "H2", "H3", "S"]
    assert pd.read_csv(out / "comparisons.csv")["metric"].nunique() == len(RANKING_KEYS)
    assert (out / "plots" / "pareto.png").stat().st_size > 0


def _no_nan(token: str) -> float:
    raise AssertionError(f"non-standard JSON constant {token}")


def test_ci_columns_are_ordered(evals, cmp) -> None:
    df = summary_rows(evals, cmp)
    for m in RANKING_KEYS:
        assert (df[f"{m}_lo"] <= df[m] + 1e-12).all() and (df[m] <= df[f"{m}_hi"] + 1e-12).all()
    assert not math.isnan(df["retention"].iloc[0])


def test_best_student_is_chosen_on_validation(tmp_path: Path) -> None:
    ev = [*world(), make_eval("student/B", "student", 2.5, 8, layers=[6, 7],
                              selections=[("gradient", "top_k")])]  # fmt: skip
    cmp = comparison_table(ev, ["ndcg@5"], n_boot=100, seed=0)
    assert "student/B" in h3(ev, cmp).notes[0]  # no validation scores: test NDCG@5 decides
    logs = []
    for name, best in (("A", 0.4), ("B", 0.3)):
        p = tmp_path / name / "train_log.parquet"
        p.parent.mkdir()
        pd.DataFrame({"epoch": [0, 1], "valid_ndcg@5": [0.1, best]}).to_parquet(p)
        logs.append(p)
    valid = validation_scores(None, logs)
    assert valid == {"student/A": 0.4, "student/B": 0.3}
    h = h3(ev, cmp, valid)
    assert "student/A" in h.notes[0] and "validation" in h.notes[0]
    h = h2(ev, None, valid, n_boot=100, seed=0)
    assert h.table["method"].tolist() == ["fisher", "gradient"]


def test_h3_uses_k_closest_to_quarter_and_h2_ranks_per_k() -> None:
    ev = [*world(), make_eval("student/K4", "student", 3.0, 9, layers=[4, 5, 6, 7],
                              selections=[("fisher", "top_k")])]  # fmt: skip
    # 400 resamples: the smallest p is 2/401, below 0.05 after Holm over H3's three baselines
    cmp = comparison_table(ev, ["ndcg@5"], n_boot=400, seed=0)
    h = h3(ev, cmp)  # L = 8: k = 2 is L/4, although the k = 4 student is better
    assert h.verdict == "holds" and "student/A" in h.notes[0]
    assert any("[2, 4]" in n for n in h.notes)
    h = h2(ev, None, n_boot=100, seed=0)
    assert sorted(h.table["k"]) == [2, 4]


def test_students_are_credited_to_every_selection_that_kept_their_layers() -> None:
    ev = world()
    sels = [{"method": "gradient", "strategy": "top_k", "repeat": 0, "layerset": "L05-07"},
            {"method": "fisher", "strategy": "top_k", "repeat": 0, "layerset": "L05-07"},
            {"method": "taylor", "strategy": "top_k", "repeat": 0, "layerset": "L09"}]  # fmt: skip
    out = {e["model"]: e for e in attach_selections(ev, sels)}
    labels = [f"{s['method']}/{s['strategy']}" for s in out["student/A"]["selections"]]
    assert labels == ["fisher/top_k", "gradient/top_k"]
    assert ev[3]["selections"] == [{"method": "fisher", "strategy": "top_k", "repeat": 0}]


def test_seeds_are_pooled_per_layerset_and_mode() -> None:
    seeds = []
    for s in range(3):
        e = make_eval(f"student/L05-07__keep__s{s}", "student", 2.0, 20 + s, layers=[5, 7],
                      selections=[("fisher", "top_k")])  # fmt: skip
        seeds.append(e | {"seed": s})
    single = make_eval("student/L00-01__keep__s0", "student", 0.3, 30, layers=[0, 1],
                       selections=[("none", "first_k")]) | {"seed": 0}  # fmt: skip
    ev = [world()[0], world()[1], *seeds, single]
    out = pool_seeds(ev, n_boot=100, seed=0)
    names = [e["model"] for e in out]
    assert names == ["teacher", "popular", "student/L05-07__keep", "student/L00-01__keep__s0"]
    pooled = out[2]
    assert pooled["seeds"] == [0, 1, 2] and len(pooled["members"]) == 3
    want = np.mean([e["metrics"]["ndcg@5"] for e in seeds])
    assert pooled["metrics"]["ndcg@5"] == pytest.approx(want)
    assert pooled["seed_sd"]["ndcg@5"] > 0
    lo, hi = pooled["ci"]["ndcg@5"]
    assert lo < pooled["metrics"]["ndcg@5"] < hi
    # the interval resamples seeds, then users (two_level_ci, tested against a slow loop)
    by_seed = np.stack([paired_arrays(seeds[0], e, "ndcg@5")[1] for e in seeds])
    assert [lo, hi] == list(two_level_ci(by_seed, n_boot=100, seed=0)[1:])
    assert pooled["ci_users"]["ndcg@5"] != [lo, hi]
    # a pooled student (seed None) is no longer paired with a single-seed baseline
    cmp = comparison_table(out, ["ndcg@5"], n_boot=100, seed=0)
    assert set(cmp.loc[cmp["model"] == "student/L05-07__keep", "versus"]) == {"teacher", "popular"}


def test_seed_signs_pair_seeds_and_fall_back_to_the_single_seed():
    from layerkd.report.retention import seed_signs

    a = {"seed_metrics": {"0": {"ndcg@5": 0.5}, "1": {"ndcg@5": 0.3}, "2": {"ndcg@5": 0.4}}}
    b = {"seed_metrics": {"0": {"ndcg@5": 0.4}, "1": {"ndcg@5": 0.35}, "3": {"ndcg@5": 0.0}}}
    assert seed_signs(a, b) == pytest.approx([0.1, -0.05])  # seeds 0 and 1 only
    single = {"seed": 0, "metrics": {"ndcg@5": 0.45}}
    assert seed_signs(a, single) == pytest.approx([0.05])


def test_latex_tables_bold_the_best_and_escape(tmp_path: Path, evals) -> None:
    from layerkd.report.latex import escape, to_latex
    from layerkd.report.verdict import Hypothesis

    cmp = comparison_table(evals, ["ndcg@5"], n_boot=50, seed=0)
    df = summary_rows(evals, cmp)
    tex = to_latex(df, [Hypothesis("H3", "a_b & c", "claim", "holds")], "my_data")
    assert tex.count("\\toprule") == 2 and tex.count("\\bottomrule") == 2
    assert "my\\_data" in tex and "a\\_b \\& c" in tex and escape("50%") == "50\\%"
    best = df.drop_duplicates("model").sort_values("ndcg@5").iloc[-1]
    row = next(ln for ln in tex.splitlines() if ln.startswith(escape(best["model"]) + " &"))
    assert row.split(" & ")[1].startswith("\\textbf{")  # the best NDCG@5 is bold
    half = (best["ndcg@5_hi"] - best["ndcg@5_lo"]) / 2
    assert f"{best['ndcg@5']:.4f} $\\pm$ {half:.4f}" in row
