"""How quality falls with depth: test NDCG@5 against the number of kept layers ``k``.

With ``selection.k`` a list, the report draws ``depth.png`` and writes ``depth.csv`` (and a
table in ``summary.tex``): per k, keep students only (seeds pooled), with their 95% interval,

* ``teacher``: the teacher (every k: a flat line);
* ``first_k``, ``uniform`` and ``random_search`` (``random`` in a run without the random
  search): the score-free baselines;
* ``adaptive``: the best importance-driven student at that k (chosen on validation NDCG@5 when
  every candidate has one, as H2 and H3 choose);
* ``greedy``: the student of a greedy selection (SLEB-style), where one was distilled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from layerkd.evaluation.significance import baseline_label, is_adaptive  # noqa: E402
from layerkd.records import Record  # noqa: E402
from layerkd.report.latex import escape  # noqa: E402
from layerkd.report.pareto import save_figure  # noqa: E402
from layerkd.report.verdict import METRIC, best_student  # noqa: E402

SERIES = ("teacher", "first_k", "uniform", "random_search", "adaptive", "greedy")
COLUMNS = ["k", "series", "model", METRIC, "lo", "hi"]


def _row(k: int, series: str, e: Record) -> dict[str, object]:
    lo, hi = e["ci"][METRIC]
    return {"k": k, "series": series, "model": e["model"], METRIC: e["metrics"][METRIC],
            "lo": lo, "hi": hi}  # fmt: skip


def depth_table(evals: Sequence[Record], valid: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per (k, series) that has a model (columns :data:`COLUMNS`); empty with fewer
    than two k."""
    keep = [e for e in evals if e["kind"] == "student" and (e.get("mode") or "keep") == "keep"]
    ks = sorted({len(e["layers"]) for e in keep})
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    if len(ks) < 2:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for k in ks:
        at_k = [e for e in keep if len(e["layers"]) == k]
        if teacher is not None:
            rows.append(_row(k, "teacher", teacher))
        labels = {e["model"]: {baseline_label(s) for s in e.get("selections") or []} for e in at_k}
        for name in ("first_k", "uniform", "random_search"):
            hit = [e for e in at_k if name in labels[e["model"]]]
            if not hit and name == "random_search":
                hit = [e for e in at_k if "random-0" in labels[e["model"]]]
            if hit:
                rows.append(_row(k, name, hit[0]))
        adaptive = [e for e in at_k if is_adaptive(e)]
        if adaptive:
            rows.append(_row(k, "adaptive", best_student(adaptive, valid)[0]))
        greedy = [e for e in at_k if any(s["method"] == "greedy" for s in e["selections"] or [])]
        if greedy:
            rows.append(_row(k, "greedy", greedy[0]))
    return pd.DataFrame(rows, columns=COLUMNS)


def depth_plot(table: pd.DataFrame, path: Path) -> Path:
    """Test NDCG@5 (95% interval) against k, one line per series of :func:`depth_table`."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, name in enumerate(SERIES):
        t = table[table["series"] == name].sort_values("k")
        if t.empty:
            continue
        err = [t[METRIC] - t["lo"], t["hi"] - t[METRIC]]
        style = {"ls": "--", "color": "black"} if name == "teacher" else {"marker": "o"}
        ax.errorbar(t["k"] + 0.06 * (i - 2.5) * (name != "teacher"), t[METRIC], yerr=err,
                    capsize=3, label=name.replace("_", " "), **style)  # fmt: skip
    ax.set_xticks(sorted(table["k"].unique()))
    ax.set_xlabel("layers kept (k)")
    ax.set_ylabel("NDCG@5 (test, 95% interval)")
    ax.set_title("Quality against depth (keep students)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def depth_latex(table: pd.DataFrame, dataset: str = "") -> str:
    """``depth.csv`` as a LaTeX table: one row per k, one column per series, mean [lo, hi]."""
    if table.empty:
        return ""
    series = [s for s in SERIES if s in set(table["series"])]
    lines = ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{r" + "c" * len(series) + "}",
             "\\toprule", "k & " + " & ".join(escape(s) for s in series) + " \\\\",
             "\\midrule"]  # fmt: skip
    for k, grp in table.groupby("k"):
        cells = grp.set_index("series")
        row = [
            f"{cells.at[s, METRIC]:.4f} [{cells.at[s, 'lo']:.4f}, {cells.at[s, 'hi']:.4f}]"
            if s in cells.index and not math.isnan(cells.at[s, METRIC])
            else "--"
            for s in series
        ]
        lines.append(f"{k} & " + " & ".join(row) + " \\\\")
    caption = f"{escape(dataset)}: test NDCG@5 against the number of kept layers"
    lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
