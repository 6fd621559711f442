"""The size plot of the report: ``pareto.png``, NDCG@5 (95% interval) against parameters for
the teacher and the students, with the reference rankers (most-popular, SASRec, random) drawn
as lines with their interval as a band."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from layerkd.evaluation.significance import baseline_label, is_adaptive, selection_label  # noqa: E402
from layerkd.io import atomic_path  # noqa: E402
from layerkd.records import Record  # noqa: E402

DPI = 120
BASE_MARKERS = {"first_k": "s", "last_k": "v", "uniform": "^", "random": "D", "block": "P"}
BASE_MARKERS["random_search"] = "X"


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically and close it (every report figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _fmt_params(x: float, _pos: int) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


# reference rankers drawn as a line with their 95% band: (line style, colour, legend label)
REFERENCE_LINES = {
    "popular": ("--", "firebrick", "most-popular ranker"),
    "sasrec": ("-.", "navy", "SASRec"),
    "random": (":", "dimgrey", "random ranker"),
}


def reference_bands(evals: Sequence[Record]) -> list[tuple[str, float, float, float]]:
    """(name, NDCG@5, interval low, interval high) of each reference ranker of
    :data:`REFERENCE_LINES` that was evaluated, in that order."""
    out = []
    for name in REFERENCE_LINES:
        ref = next((e for e in evals if e["model"] == name), None)
        if ref is not None:
            lo, hi = ref["ci"]["ndcg@5"]
            out.append((name, float(ref["metrics"]["ndcg@5"]), float(lo), float(hi)))
    return out


def pareto_plot(evals: Sequence[Record], path: Path) -> Path:
    """NDCG@5 with its 95% interval against parameter count. Teacher: star; importance-driven
    students: circles; baseline-only students: their baseline's marker; reference rankers
    (no parameters): horizontal lines with their interval as a band; dotted: Pareto front."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    llm = [e for e in evals if e["kind"] != "reference"]
    colors = plt.get_cmap("tab10")
    seen: dict[float, int] = {}
    points = []
    for i, e in enumerate(sorted(llm, key=lambda r: (r["kind"] != "teacher", r["model"]))):
        y, (lo, hi) = e["metrics"]["ndcg@5"], e["ci"]["ndcg@5"]
        p = float(e["params"])
        n_same = seen.get(p, 0)
        seen[p] = n_same + 1
        x = p * (1.0 + 0.025 * n_same)  # spread models of equal size so they stay readable
        points.append((p, y, x))
        if e["kind"] == "teacher":
            marker, color, label = "*", "black", "teacher"
        else:
            sels = e.get("selections") or []
            mode = f" {e['mode']}" if e.get("mode") else ""
            label = f"{e.get('layerset') or e['model']}{mode}: " + ", ".join(
                selection_label(s).replace("none/", "") for s in sels
            )
            base = next((baseline_label(s) for s in sels if s["method"] == "none"), None)
            adaptive = is_adaptive(e)
            marker = "o" if adaptive else BASE_MARKERS.get((base or "").split("-")[0], "s")
            color = colors(i % 10)
        ax.errorbar(
            x,
            y,
            yerr=[[y - lo], [hi - y]],
            fmt=marker,
            color=color,
            ms=11 if marker == "*" else 7,
            capsize=3,
            label=label,
        )
    for name, y, lo, hi in reference_bands(evals):
        style, color, label = REFERENCE_LINES[name]
        ax.axhline(y, ls=style, color=color, label=label)
        ax.axhspan(lo, hi, color=color, alpha=0.06)
    front, best = [], -np.inf
    for _, y, x in sorted(points, key=lambda t: (t[0], -t[1])):
        if y > best:
            front.append((x, y))
            best = y
    if len(front) > 1:
        ax.plot(*zip(*front, strict=True), ls=":", color="grey", lw=1, label="Pareto front")
    sizes = sorted({p for p, _, _ in points})
    log = len(sizes) > 1 and sizes[-1] / max(sizes[0], 1.0) > 20
    if log:
        ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.xaxis.set_major_formatter(FuncFormatter(_fmt_params))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, p: ""))
    ax.margins(x=0.12)
    ax.set_xlabel("parameters" + (" (log scale)" if log else "") + "; bands: reference 95% CI")
    ax.set_ylabel("NDCG@5 (test, 95% bootstrap interval)")
    ax.set_title("Quality against size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return save_figure(fig, path)
