"""Was the teacher trained as well as its students? (report check **T**, the under-training
gate)

A student distilled from the teacher's layers that ranks the *validation* samples significantly
better than the teacher itself shows that the teacher has not learned the task as well as a
model built from part of it: its layer statistics then say little about which layers matter,
and the teacher hypothesis (R) does not hold. Each student (seeds pooled: per-user metrics
averaged over seeds) is compared with the teacher user by user on the validation samples of the
evaluated users (``eval/{model}.json`` key ``valid``, sampled candidates), by the paired
bootstrap of the NDCG@5 difference; the verdict uses Holm's adjustment over every student
compared (the family of the gate's tests), and the table keeps both p-values.
"""

from __future__ import annotations

import pandas as pd

from layerkd.evaluation.significance import compare
from layerkd.records import Record
from layerkd.report.verdict import METRIC, Hypothesis, family_holm

__all__ = ["teacher_gate"]


def teacher_gate(evals: list[Record], *, n_boot: int, seed: int) -> Hypothesis:
    """T: no student is significantly above the teacher on validation NDCG@5."""
    h = Hypothesis(
        "T",
        "The teacher is trained at least as well as its students",
        "No student ranks the validation samples significantly better than the teacher.",
        "untestable",
    )
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    students = [e for e in evals if e["kind"] == "student" and e.get("valid")]
    if teacher is None or not teacher.get("valid") or not students:
        h.notes.append(
            "No validation metrics of the teacher and its students (eval/*.json key 'valid')."
        )
        return h
    rows = []
    t_valid = teacher["valid"]["metrics"][METRIC]
    for s in sorted(students, key=lambda e: e["model"]):
        c = compare(s["valid"], teacher["valid"], METRIC, n_boot=n_boot, seed=seed)
        per_seed = s["valid"].get("seed_metrics") or {"": s["valid"]["metrics"]}
        above = sum(m[METRIC] > t_valid for m in per_seed.values())
        rows.append({"model": s["model"], **c, "seeds": len(per_seed), "seeds_above": above})
    cols = ["model", "mean", "mean_versus", "diff", "diff_lo", "diff_hi", "p_bootstrap"]
    h.table = pd.DataFrame(rows)[[*cols, "verdict", "seeds", "seeds_above"]].rename(
        columns={"mean": "valid_ndcg@5", "mean_versus": "teacher_valid_ndcg@5"}
    )
    h.table = family_holm(h.table, "T: every student vs the teacher (validation)")
    above = h.table[h.table["verdict"] == "better"]
    h.notes.append(
        f"Teacher validation NDCG@5 {t_valid:.4f} on {len(teacher['valid']['user_ids'])} users "
        f"(the judge half, {teacher['valid'].get('protocol', 'sampled')} ranking); "
        f"{len(students)} students compared (paired bootstrap; the verdict uses Holm's "
        "adjustment over these comparisons, p_holm)."
    )
    if above.empty:
        h.verdict = "holds"
        best = h.table.sort_values("diff", ascending=False).iloc[0]
        h.notes.append(
            f"No student is significantly above the teacher (closest: {best['model']}, "
            f"{best['diff']:+.4f}, p = {best['p_bootstrap']:.3g}, Holm p = {best['p_holm']:.3g})."
        )
    else:
        h.verdict = "does not hold"
        h.notes.append(
            f"UNDER-TRAINED TEACHER: {len(above)} student(s) rank the validation samples "
            f"significantly better than the teacher ({', '.join(above['model'])}): the teacher "
            "has not learned the task as well as models built from part of it, so the teacher "
            "hypothesis R does not hold."
        )
    return h
