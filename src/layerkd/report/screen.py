"""Does the layer-set screen predict the distilled result? (report check **S**)

The screen (:mod:`layerkd.student.screen`) scores every distinct keep layer set before any
student is distilled; ``selection.distill: screen`` distils only its best sets and the
baselines. Whether that choice can be trusted is measured here, over the layer sets that were
distilled (keep students, seeds pooled): Spearman and Kendall correlation between each screen
checkpoint's score and the student's final validation NDCG@5 (what the screen stands in for)
and test NDCG@5 (primary protocol). The screen table is returned beside the students' numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats

from layerkd.records import Record
from layerkd.report.verdict import METRIC, VALID, Hypothesis

__all__ = ["screen_check", "screen_table", "screen_validity"]

#: fewest distilled layer sets a correlation is computed on
MIN_SETS = 3


def screen_table(
    screens: list[Path], evals: list[Record], valid: dict[str, float] | None
) -> pd.DataFrame:
    """Every screened layer set (one row per k and set, best screen score first) with the final
    validation and test NDCG@5 of its keep student where it was distilled (seeds pooled)."""
    frames = []
    for path in screens:
        df = pd.read_csv(path)
        df.insert(0, "k", int(Path(path).stem.lstrip("k")))
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    keep = {
        e["layerset"]: e
        for e in evals
        if e["kind"] == "student" and (e.get("mode") or "keep") == "keep" and e.get("layerset")
    }
    table["distilled"] = table["layerset"].isin(keep)
    table[VALID] = [
        (valid or {}).get(keep[s]["model"], math.nan) if s in keep else math.nan
        for s in table["layerset"]
    ]
    table[METRIC] = [
        keep[s]["metrics"][METRIC] if s in keep else math.nan for s in table["layerset"]
    ]
    return table.sort_values(["k", "rank"]).reset_index(drop=True)


def screen_validity(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman and Kendall (with their p-values) between every screen checkpoint's score and
    the final validation / test NDCG@5, per k, over the distilled layer sets."""
    cols = ["k", "screen", "versus", "n_sets", "spearman", "spearman_p", "kendall", "kendall_p"]
    rows = []
    if table.empty:
        return pd.DataFrame(columns=cols)
    checkpoints = [c for c in table.columns if c.startswith("score_step")]
    for k, grp in table[table["distilled"]].groupby("k"):
        for col in checkpoints:
            for target in (VALID, METRIC):
                pair = grp[[col, target]].dropna()
                row = {"k": int(k), "screen": col, "versus": target, "n_sets": len(pair)}
                if len(pair) >= MIN_SETS and pair[col].nunique() > 1 and pair[target].nunique() > 1:
                    rho = stats.spearmanr(pair[col], pair[target])
                    tau = stats.kendalltau(pair[col], pair[target])
                    row |= {"spearman": float(rho.statistic), "spearman_p": float(rho.pvalue)}
                    row |= {"kendall": float(tau.statistic), "kendall_p": float(tau.pvalue)}
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def screen_check(table: pd.DataFrame, validity: pd.DataFrame) -> Hypothesis:
    """S: the screen score ranks the distilled layer sets as their final validation NDCG@5
    does (Spearman > 0 at p < 0.05 at every k, for the score the screen ranks by)."""
    h = Hypothesis(
        "S",
        "The screen predicts the distilled result",
        "Ranked by screen score, the distilled layer sets rank as by final validation NDCG@5.",
        "untestable",
    )
    if table.empty:
        h.notes.append("No screen table is among the report's inputs.")
        return h
    h.table = table.drop(columns=[c for c in ("seconds",) if c in table])
    last = sorted((c for c in table.columns if c.startswith("score_step")), key=_step)[-1]
    for r in validity.itertuples():
        if pd.isna(r.spearman):
            h.notes.append(
                f"k = {r.k}, {r.screen} vs {r.versus}: {r.n_sets} distilled sets with distinct "
                f"scores (fewer than {MIN_SETS}): no correlation."
            )
            continue
        h.notes.append(
            f"k = {r.k}, {r.screen} vs {r.versus} over {r.n_sets} distilled sets: Spearman "
            f"{r.spearman:+.3f} (p = {r.spearman_p:.3g}), Kendall {r.kendall:+.3f} "
            f"(p = {r.kendall_p:.3g})."
        )
    ranked = validity[(validity["screen"] == last) & (validity["versus"] == VALID)]
    tested = ranked.dropna(subset=["spearman"])
    n = int(table["distilled"].sum())
    h.notes.append(
        f"{n} of {len(table)} screened layer sets were distilled; the screen ranks by {last}."
    )
    if tested.empty:
        return h
    ok = (tested["spearman"] > 0) & (tested["spearman_p"] < 0.05)
    if ok.all() and len(tested) == len(ranked):
        h.verdict = "holds"
    else:
        h.verdict = "partly" if ok.any() else "does not hold"
    return h


def _step(col: str) -> int:
    return int(col[len("score_step") :])
