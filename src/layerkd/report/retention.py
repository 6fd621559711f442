"""H3 - at k = L/4 the best importance-driven selection retains more of the teacher's NDCG@5
than the ``first_k``, ``uniform`` and random-search baselines (``random_search``: the best of
as many screened random sets as the methods proposed; a run without it uses ``random``). The
test is paired on NDCG@5, which is the test of retention since the teacher's NDCG@5 is a common
factor; the verdict uses Holm's adjustment over the baselines compared (``p_holm``), and with
several seeds the same sign in every seed."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from layerkd.evaluation.significance import baseline_students, is_adaptive, selection_label
from layerkd.records import Record
from layerkd.report.verdict import METRIC, Hypothesis, best_student, family_holm, paired_row

#: the baselines H3 compares against: the best of a random search of the methods' budget
#: (``selection.random_search``) or, in a run without it, one random draw
H3_BASELINES = ("first_k", "uniform", "random_search")
H3_FALLBACK = {"random_search": "random"}


def _status(verdict: str) -> str:
    return {"better": "holds", "worse": "does not hold", "same": "same model"}.get(
        verdict, "not significant"
    )


def seed_signs(a: Record, b: Record, metric: str = METRIC) -> list[float]:
    """The per-seed differences ``a - b`` of ``metric`` over the seeds both were trained with
    (pooled records keep each seed's metrics; a single-seed record is its one seed)."""

    def per_seed(r: Record) -> dict[str, float]:
        if r.get("seed_metrics"):
            return {s: m[metric] for s, m in r["seed_metrics"].items()}
        return {str(r.get("seed")): r["metrics"][metric]}

    sa, sb = per_seed(a), per_seed(b)
    return [sa[s] - sb[s] for s in sorted(set(sa) & set(sb))]


def _h3_rows(
    evals: list[Record], cmp: pd.DataFrame, best: Record, t_ndcg: float
) -> list[dict[str, Any]]:
    """One row per baseline (each random repeat apart): retention of both and the test. With
    several training seeds a row holds only if the seed mean is significantly better and the
    difference has the same sign in every seed."""
    by_name = {e["model"]: e for e in evals}
    rows: list[dict[str, Any]] = []
    bases = baseline_students(evals)
    for wanted in H3_BASELINES:
        name = wanted if wanted in bases else H3_FALLBACK.get(wanted, wanted)
        found = sorted(b for b in bases if b == name or b.startswith(f"{name}-"))
        if not found:
            rows.append({"baseline": name, "status": "missing"})
        for b in found:
            row = paired_row(cmp, best["model"], b)
            if row is None:
                rows.append({"baseline": b, "status": "missing (at this k)"})
                continue
            diffs = seed_signs(best, by_name[row["versus_model"]])
            rows.append(
                {
                    "baseline": b,
                    "baseline_model": row["versus_model"],
                    "retention_adaptive": row["mean"] / t_ndcg,
                    "retention_baseline": row["mean_versus"] / t_ndcg,
                    "diff_ndcg@5": row["diff"],
                    "p_bootstrap": row["p_bootstrap"],
                    "p_wilcoxon": row["p_wilcoxon"],
                    "seeds": len(diffs),
                    "seeds_better": sum(d > 0 for d in diffs),
                    "diff": row["diff"],
                    "verdict": row["verdict"],
                }
            )
    return _adjusted(rows)


def _adjusted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tested rows' verdicts under Holm's adjustment over H3's family (the best adaptive
    student against each baseline), then the status: ``holds`` needs the adjusted test and
    the same sign in every seed."""
    tested = [r for r in rows if "verdict" in r]
    if tested:
        adj = family_holm(pd.DataFrame(tested), "H3: best adaptive vs each baseline")
        for r, (_, a) in zip(tested, adj.iterrows(), strict=True):
            status = _status(a["verdict"])
            if status == "holds" and r["seeds_better"] < r["seeds"]:
                status = "not in every seed"
            r.update(p_holm=a["p_holm"], status=status)
            del r["diff"], r["verdict"]
    return rows


def h3(evals: list[Record], cmp: pd.DataFrame, valid: dict[str, float] | None = None) -> Hypothesis:
    """H3: retention of the best adaptive selection vs the score-free baselines at the k
    closest to L/4 (``untestable`` when no k run is L/4 rounded either way)."""
    h = Hypothesis(
        "H3",
        "Adaptive selection beats score-free baselines at k = L/4",
        "At k = L/4 the best importance-driven student retains more of the teacher's NDCG@5 "
        "than first_k, uniform and a random search of the same budget.",
        "untestable",
    )
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    adaptive = [e for e in evals if e["kind"] == "student" and is_adaptive(e)]
    if teacher is None or not adaptive:
        h.notes.append("Needs a teacher and at least one importance-driven student.")
        return h
    n_layers = int(teacher.get("teacher_layers") or len(teacher.get("layers") or []))
    quarter = n_layers / 4
    ks = sorted({len(e["layers"]) for e in adaptive})
    k = min(ks, key=lambda v: (abs(v - quarter), v))
    adaptive = [e for e in adaptive if len(e["layers"]) == k]
    bases = [b for bs in baseline_students(evals).values() for b in bs if len(b["layers"]) == k]
    with_base = [e for e in adaptive if e.get("mode") in {b.get("mode") for b in bases}]
    adaptive = with_base or adaptive  # compare within a student mode that has baselines
    best, how = best_student(adaptive, valid)
    t_ndcg = teacher["metrics"][METRIC]
    k_ok = k in {math.floor(quarter), math.ceil(quarter)}
    h.notes.append(
        f"Best adaptive student at k = {k} of L = {n_layers}"
        + (f" ({best['mode']} mode)" if best.get("mode") else "")
        + f": {best['model']} "
        f"({', '.join(selection_label(s) for s in best['selections'])}), "
        f"retention {best['metrics'][METRIC] / t_ndcg:.3f} ({how})."
    )
    if len(ks) > 1:
        h.notes.append(f"k values with students: {ks}; H3 uses the one closest to L/4.")
    if not k_ok:
        h.notes.append(
            f"No k run is L/4 = {quarter:g} (rounded): the claim cannot be tested with this "
            f"config; the comparison below is at k = {k}."
        )
    rows = _h3_rows(evals, cmp, best, t_ndcg)
    h.table = pd.DataFrame(rows)
    states = [r["status"] for r in rows]
    missing = [r["baseline"] for r in rows if r["status"].startswith("missing")]
    if missing:
        h.notes.append(f"Baseline(s) missing, not tested: {', '.join(missing)}.")
    same = [r["baseline"] for r in rows if r["status"] == "same model"]
    if same:
        h.notes.append(
            f"The best adaptive selection kept the same layers as {', '.join(same)}: "
            "no gain from the importance scores there."
        )
    if rows and max(r.get("seeds", 0) for r in rows) <= 1:
        h.notes.append(
            "One training seed per student: the verdict cannot show training variance "
            "(distill.seeds lists more to require the same sign in every seed)."
        )
    tested = [s for s in states if not s.startswith("missing")]
    if not tested:
        verdict = "untestable"
    elif all(s == "holds" for s in tested):
        verdict = "partly" if missing else "holds"
    else:
        verdict = "does not hold"
    h.verdict = verdict if k_ok else "untestable"
    if not k_ok and tested:
        h.notes.append(f"At k = {k} the comparison says: {verdict}.")
    return h
