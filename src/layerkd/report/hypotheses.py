"""The report's hypotheses, computed from the run's outputs (never written by hand).

* **T** - the under-training gate (:mod:`layerkd.report.gate`): no student is significantly
  above the teacher on validation; when it fails, R does not hold.
* **R** - the teacher beats the most-popular ranker (else its layers are not worth studying).
* **H1** - importance concentrates in the upper layers: the mean normalised score of the upper
  (deepest) quarter over the lower quarter lies in 3.8-8.5 (claimed for a 32-layer teacher).
* **H2** - which method agrees best with the ablation ground truth (needs the validation table)
  and which gives the best student; the claim is that they are the same method.
* **H3** - at k = L/4 the best importance-driven selection retains more of the teacher's NDCG@5
  than the ``first_k``, ``uniform`` and random-search baselines (:mod:`layerkd.report.retention`).

Each verdict uses Holm's adjustment over the hypothesis's own family of tests.

Each hypothesis is a :class:`Hypothesis` with a verdict (``holds``, ``does not hold``,
``partly``, ``untestable``), plain sentences and an optional table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from layerkd.evaluation.significance import compare, holm, is_adaptive, selection_label, verdict
from layerkd.importance.scores import upper_lower_ratio
from layerkd.records import Record
from layerkd.report.gate import teacher_gate
from layerkd.report.retention import h3
from layerkd.report.verdict import METRIC, VALID, Hypothesis, chooser, family_holm, paired_row

__all__ = ["H1_RANGE", "Hypothesis", "h1", "h2", "h3", "hypotheses", "reference_check"]

H1_RANGE = (3.8, 8.5)


def reference_check(evals: list[Record], cmp: pd.DataFrame) -> Hypothesis:
    """R: does the teacher beat the most-popular ranker and, when it was evaluated, SASRec on
    NDCG@5? It holds only when every paired test says ``better``; without a SASRec record
    (older runs) it is the most-popular test alone."""
    h = Hypothesis("R", "Teacher vs most-popular", "The teacher beats most-popular.", "untestable")
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    row = None if teacher is None else paired_row(cmp, teacher["model"], "popular")
    if row is None:
        h.notes.append("No teacher or no most-popular ranker was evaluated.")
        return h
    rows = {"most-popular": row}
    sasrec = paired_row(cmp, teacher["model"], "sasrec")
    if sasrec is not None:
        rows["SASRec"] = sasrec
        h.title = "Teacher vs most-popular and SASRec"
        h.claim = "The teacher beats most-popular and SASRec."
    table = pd.DataFrame(list(rows.values()), index=list(rows))
    table = family_holm(table, "R: the teacher vs each reference")
    failed = [name for name, r in table.iterrows() if r["verdict"] != "better"]
    h.verdict = "does not hold" if failed else "holds"
    for name, r in table.iterrows():
        h.notes.append(
            f"Teacher NDCG@5 {r['mean']:.4f} vs {name} {r['mean_versus']:.4f}: "
            f"difference {r['diff']:+.4f} [{r['diff_lo']:+.4f}, {r['diff_hi']:+.4f}], "
            f"paired bootstrap p = {r['p_bootstrap']:.3g} (Holm over the {len(table)} "
            f"references: {r['p_holm']:.3g}), Wilcoxon p = {r['p_wilcoxon']:.3g}."
        )
    cols = ["reference", "mean", "mean_versus", "diff", "diff_lo", "diff_hi", "p_bootstrap"]
    h.table = table.reset_index(names="reference")[[*cols, "p_holm", "verdict", "family"]]
    if "most-popular" in failed:
        h.notes.append(
            "The teacher does NOT beat most-popular: its layer statistics describe a "
            "model that has not learned the task better than item popularity."
        )
    if "SASRec" in failed:
        h.notes.append(
            "The teacher does NOT beat SASRec: a small sequential recommender trained on the "
            "same interactions ranks these candidates at least as well."
        )
    return h


def h1(scores: dict[str, Record]) -> Hypothesis:
    """H1: concentration of importance in the upper layers, per method."""
    lo, hi = H1_RANGE
    h = Hypothesis(
        "H1",
        "Importance concentrates in the upper layers",
        f"Upper-quarter / lower-quarter importance is {lo}-{hi} (32-layer teacher).",
        "untestable",
    )
    if not scores:
        h.notes.append("No importance method was run.")
        return h
    rows = []
    for method, rec in sorted(scores.items()):
        ratio = upper_lower_ratio(rec["normalised"])
        c_lo, c_hi = rec.get("upper_lower_ci") or (math.nan, math.nan)
        rows.append(
            {
                "method": method,
                "n_layers": rec["n_layers"],
                "upper_lower_ratio": ratio,
                "ratio_lo": c_lo,
                "ratio_hi": c_hi,
                "concentration_ratio": rec.get("concentration_ratio"),
                "in_claimed_range": bool(lo <= ratio <= hi),
            }
        )
    h.table = pd.DataFrame(rows)
    n_in = int(h.table["in_claimed_range"].sum())
    h.verdict = "holds" if n_in == len(rows) else "partly" if n_in else "does not hold"
    h.notes.append(f"{n_in} of {len(rows)} methods fall in {lo}-{hi}.")
    with_ci = h.table.dropna(subset=["ratio_lo"])
    if not with_ci.empty:
        inside = int(((with_ci["ratio_lo"] >= lo) & (with_ci["ratio_hi"] <= hi)).sum())
        h.notes.append(
            f"ratio_lo/ratio_hi: 95% bootstrap interval over the calibration samples "
            f"({len(with_ci)} methods; taylor, ablation and greedy have none); {inside} lie "
            f"wholly in {lo}-{hi}."
        )
    h.notes.append(
        "upper_lower_ratio is by depth (the claim's quantity); concentration_ratio is the "
        "stored scores/*.json value: highest-scoring quarter over lowest-scoring quarter, "
        "whatever their depth, so it is >= 1 and not the claim's quantity."
    )
    n_layers = {int(r["n_layers"]) for r in rows}
    if n_layers != {32}:
        h.notes.append(
            f"This teacher has {sorted(n_layers)} layers, not 32 (the claim's depth): its "
            f"quarters are {', '.join(f'{n / 4:g}' for n in sorted(n_layers))} layers "
            "(a fractional layer counts in part)."
        )
    return h


def _best_per_method(
    evals: list[Record], teacher_ndcg: float, valid: dict[str, float] | None
) -> tuple[pd.DataFrame, str, str]:
    """Each importance method's best student at each k (best first within a k)."""
    students = [e for e in evals if e["kind"] == "student" and is_adaptive(e)]
    by, how = chooser(students, valid)
    rows = [
        {
            "k": len(rec["layers"]),
            "mode": rec.get("mode") or "",
            "method": sel["method"],
            "strategy": selection_label(sel).split("/", 1)[1],
            "model": rec["model"],
            VALID: (valid or {}).get(rec["model"], math.nan),
            METRIC: rec["metrics"][METRIC],
            "retention": rec["metrics"][METRIC] / teacher_ndcg,
        }
        for rec in students
        for sel in rec["selections"]
        if sel["method"] != "none"
    ]
    cols = ["k", "mode", "method", "strategy", "model", VALID, METRIC, "retention"]
    df = pd.DataFrame(rows, columns=cols)
    df = df.sort_values(["k", "mode", by, "method"], ascending=[True, True, False, True])
    return df.drop_duplicates(["k", "mode", "method"]).reset_index(drop=True), by, how


def _ablation_agreement(validation: pd.DataFrame) -> pd.DataFrame:
    """Rows of the validation table against ablation: method, spearman, kendall (best first)."""
    v = validation[(validation["method_a"] == "ablation") | (validation["method_b"] == "ablation")]
    v = v.assign(method=np.where(v["method_a"] == "ablation", v["method_b"], v["method_a"]))
    v = v[v["method"] != "ablation"].sort_values("spearman", ascending=False)
    return v[["method", "spearman", "kendall"]].reset_index(drop=True)


def _winners(
    best: pd.DataFrame, by: str, evals: list[Record], n_boot: int, seed: int
) -> tuple[dict[str, set[str]], set[str], list[str], dict[str, set[str]]]:
    """Per k (and student mode), the methods (ablation aside: it is the ground truth) whose
    student ranks first; the keys where that first place is clear (one winner, significantly
    above the runner-up); one sentence per key with the paired test against the runner-up;
    the methods with a student per key."""
    by_name = {e["model"]: e for e in evals}
    winners, notes, clear, present = {}, [], set(), {}
    tests: list[tuple[str, dict, bool]] = []  # (key, runner-up test, one winner)
    for (k, mode), grp in best[best["method"] != "ablation"].groupby(["k", "mode"]):
        key = f"{k}" + (f" ({mode})" if mode else "")
        top = grp[by].iloc[0]
        present[key] = set(grp["method"])
        winners[key] = set(grp.loc[grp[by] == top, "method"])
        note = (
            f"k = {key}: best student from {', '.join(sorted(winners[key]))} "
            f"({grp['model'].iloc[0]}, test NDCG@5 {grp[METRIC].iloc[0]:.4f})"
        )
        runner = grp[grp[by] < top]
        if not runner.empty:
            a, b = by_name[grp["model"].iloc[0]], by_name[runner["model"].iloc[0]]
            c = compare(a, b, METRIC, n_boot=n_boot, seed=seed)
            note += (
                f"; vs runner-up {runner['method'].iloc[0]}: {c['diff']:+.4f}, "
                f"paired bootstrap p = {c['p_bootstrap']:.3g}"
            )
            tests.append((key, c, len(winners[key]) == 1))
        elif len(grp) > 1:
            note += "; every method ties (often the same layers)"
        else:
            note += "; the only method with a student at this k"
        notes.append(note + ".")
    if tests:  # Holm over H2's family: the first place at each k against its runner-up
        adj = holm([c["p_bootstrap"] for _, c, _ in tests])
        clear = {
            k
            for (k, c, one), q in zip(tests, adj, strict=True)
            if one and verdict(c["diff"], q) == "better"
        }
        notes.append(
            "Runner-up tests, Holm-adjusted over the "
            f"{len(tests)} k: "
            + ", ".join(f"k = {k}: {q:.3g}" for (k, _, _), q in zip(tests, adj, strict=True))
            + "."
        )
    return winners, clear, notes, present


def h2(
    evals: list[Record],
    validation: pd.DataFrame | None,
    valid: dict[str, float] | None = None,
    *,
    n_boot: int,
    seed: int,
) -> Hypothesis:
    """H2: the method closest to ablation, the method with the best student at each k, and
    whether they coincide (``partly``: at some k only)."""
    h = Hypothesis(
        "H2",
        "Agreement with ablation and the best student",
        "The method that agrees best with ablation also gives the best student.",
        "untestable",
    )
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    t_ndcg = teacher["metrics"][METRIC] if teacher else math.nan
    best, by, how = _best_per_method(evals, t_ndcg, valid)
    winners, clear, notes, present = _winners(best, by, evals, n_boot, seed)
    if not winners:
        h.notes.append("No importance-driven student (ablation aside) was evaluated.")
    else:
        h.notes += [f"Students {how}."] + notes
        h.table = best
    if validation is None or validation.empty:
        h.notes.append(
            "Agreement with ablation cannot be tested: no validation table "
            "(validation/correlations.csv) is among the report's inputs."
        )
        return h
    agree = _ablation_agreement(validation)
    if agree.empty:
        h.notes.append("The validation table has no correlation against ablation.")
        return h
    closest = str(agree["method"].iloc[0])
    listing = ", ".join(f"{r.method} {r.spearman:.3f}" for r in agree.itertuples())
    h.notes.append(f"Closest to ablation: {closest} (Spearman with ablation: {listing}).")
    if h.table is not None:
        h.table = h.table.merge(agree, on="method", how="left")
    winners = {k: w for k, w in winners.items() if closest in present[k]}
    if not winners:
        h.notes.append(f"{closest} has no distilled student: the claim cannot be tested.")
    else:
        won = [k for k, w in winners.items() if closest in w]
        unclear = [k for k in won if k not in clear]
        full = len(won) == len(winners) and not unclear
        h.verdict = "holds" if full else "partly" if won else "does not hold"
        if unclear:
            h.notes.append(
                f"{closest} is first at k = {', '.join(map(str, unclear))} without a clear "
                "margin (a tie, no other method, or a difference that is not significant)."
            )
    return h


def hypotheses(
    evals: list[Record],
    scores: dict[str, Record],
    cmp: pd.DataFrame,
    validation: pd.DataFrame | None,
    valid: dict[str, float] | None = None,
    *,
    n_boot: int,
    seed: int,
) -> list[Hypothesis]:
    """T, R, H1, H2 and H3, in report order. ``valid`` maps a student's model name to its
    validation NDCG@5 (used to choose the "best" students without looking at the test set).
    When T flags an under-trained teacher, R does not hold whatever its own tests say."""
    gate = teacher_gate(evals, n_boot=n_boot, seed=seed)
    ref = reference_check(evals, cmp)
    if gate.verdict == "does not hold" and ref.verdict != "untestable":
        ref.verdict = "does not hold"
        ref.notes.append("The under-training gate (T) flags the teacher: R does not hold.")
    return [
        gate,
        ref,
        h1(scores),
        h2(evals, validation, valid, n_boot=n_boot, seed=seed),
        h3(evals, cmp, valid),
    ]
