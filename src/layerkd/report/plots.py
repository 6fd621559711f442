"""The report's figures (PNG, matplotlib Agg backend), one function per figure.

* ``importance.png`` - normalised importance, method x teacher layer.
* ``selection.png`` - which teacher layers each (method, strategy) kept.
* ``pareto.png`` - NDCG@5 (95% interval) against parameters: teacher, students, reference rankers.
* ``curve_teacher.png``, ``curve_{layerset}.png`` - fine-tuning / distillation curves.
* ``correlations.png`` - method-vs-method rank correlations (only with a validation table).

Each function takes plain data (records as read from JSON, DataFrames) and a path, so it can be
tested without Snakemake; :func:`write_plots` draws every figure the inputs allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from layerkd.evaluation.significance import baseline_label, selection_label  # noqa: E402
from layerkd.records import Record  # noqa: E402
from layerkd.report.pareto import pareto_plot  # noqa: E402
from layerkd.report.pareto import save_figure as _save

__all__ = [
    "correlation_heatmap",
    "greedy_curve",
    "importance_heatmap",
    "pareto_plot",
    "selection_map",
    "training_curve",
    "write_plots",
]

LOSS_COLS = ("total", "task", "kd", "hidden", "rating", "loss")


def _layer_ticks(ax: Any, n_layers: int) -> None:
    step = 1 if n_layers <= 16 else 2
    ticks = list(range(0, n_layers, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks], fontsize=8 if n_layers > 16 else 9)
    ax.set_xlabel("teacher layer (0 = closest to the embeddings)")


def importance_heatmap(scores: dict[str, Record], path: Path) -> Path:
    """Normalised importance (sums to 1 per method) as a method x layer heatmap."""
    methods = sorted(scores)
    mat = np.array([scores[m]["normalised"] for m in methods], dtype=float)
    n_layers = mat.shape[1]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.32 * n_layers + 2.5), 0.55 * len(methods) + 1.6))
    im = ax.imshow(mat, aspect="auto", cmap="viridis", vmin=0.0)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(methods)
    _layer_ticks(ax, n_layers)
    if n_layers <= 12:
        for (i, j), v in np.ndenumerate(mat):
            white = v < 0.6 * mat.max()
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if white else "black",
            )
    fig.colorbar(im, ax=ax, label="normalised importance\n(sums to 1 per method)")
    ax.set_title("Layer importance by method")
    return _save(fig, path)


def _k(sel: Record) -> int:
    return int(sel.get("k", len(sel["layers"])))


def _selection_order(selections: Sequence[Record]) -> list[Record]:
    """By k, then importance-driven before baselines, then by name."""
    return sorted(selections, key=lambda s: (_k(s), s["method"] == "none", selection_label(s)))


def selection_map(
    selections: Sequence[Record], path: Path, ndcg: dict[str, dict[str, float]] | None = None
) -> Path:
    """Kept layers of every selection (rows) over the teacher's layers (columns); the right
    margin names the layer set and, when ``ndcg`` (layer set -> mode -> NDCG@5) is given, its
    students' test NDCG@5."""
    sels = _selection_order(selections)
    n_layers = max(int(s["n_layers"]) for s in sels)
    mat = np.zeros((len(sels), n_layers))
    for i, s in enumerate(sels):
        mat[i, s["layers"]] = 1.0 if s["method"] != "none" else 0.5
    fig, ax = plt.subplots(figsize=(max(5.5, 0.3 * n_layers + 4.0), 0.45 * len(sels) + 1.6))
    cmap = matplotlib.colors.ListedColormap(["#f4f4f4", "#9e9e9e", "#1f77b4"])
    ax.imshow(mat, aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks(np.arange(-0.5, n_layers), minor=True)
    ax.set_yticks(np.arange(-0.5, len(sels)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ks = sorted({_k(s) for s in sels})
    labels = [
        (f"baseline: {baseline_label(s)}" if s["method"] == "none" else selection_label(s))
        + (f" (k={_k(s)})" if len(ks) > 1 else "")
        for s in sels
    ]
    for i in range(1, len(sels)):
        if _k(sels[i]) != _k(sels[i - 1]):
            ax.axhline(i - 0.5, color="black", lw=1.2)
    ax.set_yticks(range(len(sels)))
    ax.set_yticklabels(labels)
    _layer_ticks(ax, n_layers)
    for i, s in enumerate(sels):
        note = s["layerset"]
        if ndcg:
            got = ndcg.get(s["layerset"])
            vals = ", ".join(f"{m} {v:.3f}".strip() for m, v in sorted((got or {}).items()))
            note += f"  NDCG@5 {vals}" if got else "  (not distilled)"
        ax.text(n_layers - 0.3, i, note, va="center", fontsize=8)
    ax.set_title(
        f"Kept layers (k = {', '.join(map(str, ks))}; blue: importance-driven, grey: baseline)",
        fontsize=10,
    )
    return _save(fig, path)


def training_curve(
    log: pd.DataFrame,
    path: Path,
    title: str,
    teacher_valid: float | None = None,
    who: str = "student",
) -> Path:
    """Loss components against step (left) and validation NDCG@5 against epoch (right);
    ``teacher_valid`` draws the fine-tuned teacher's best validation NDCG@5 for reference."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for col in LOSS_COLS:
        if col in log:
            part = log.dropna(subset=[col])
            if not part.empty:
                lw, alpha = (2.0, 1.0) if col in ("total", "loss") else (1.0, 0.8)
                a1.plot(part["step"], part[col], label=col, lw=lw, alpha=alpha, marker=".")
    a1.xaxis.set_major_locator(MaxNLocator(integer=True))
    a1.set_xlabel("optimizer step")
    a1.set_ylabel("training loss")
    a1.set_title("training losses")
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=6, frameon=False)
    valid = log.dropna(subset=["valid_ndcg@5"]) if "valid_ndcg@5" in log else log.iloc[:0]
    a2.plot(valid["epoch"], valid["valid_ndcg@5"], marker="o", label=who)
    if teacher_valid is not None:
        a2.axhline(teacher_valid, ls="--", color="black", lw=1, label="teacher (best validation)")
    a2.set_xlabel("epoch (0 = before training)")
    a2.set_ylabel("validation NDCG@5")
    a2.set_title("validation")
    if not valid.empty:
        a2.set_xticks(sorted({int(e) for e in valid["epoch"]}))
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def correlation_heatmap(validation: pd.DataFrame, path: Path) -> Path:
    """Spearman and Kendall correlations between methods (ablation included), symmetric."""
    names = sorted(set(validation["method_a"]) | set(validation["method_b"]))
    names = sorted(names, key=lambda n: (n != "ablation", n))
    fig, axes = plt.subplots(1, 2, figsize=(2 * (0.6 * len(names) + 2.5), 0.6 * len(names) + 1.8))
    idx = {n: i for i, n in enumerate(names)}
    for ax, col in zip(axes, ("spearman", "kendall"), strict=True):
        mat = np.full((len(names), len(names)), np.nan)
        np.fill_diagonal(mat, 1.0)
        for r in validation.itertuples(index=False):
            i, j = idx[r.method_a], idx[r.method_b]
            mat[i, j] = mat[j, i] = getattr(r, col)
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1)
        for (i, j), v in np.ndenumerate(mat):
            if not np.isnan(v):
                color = "white" if abs(v) > 0.6 else "black"
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names)
        ax.set_title(f"{col.capitalize()} rank correlation")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _save(fig, path)


def greedy_curve(rec: Record, path: Path) -> Path:
    """Calibration loss of the greedy method against layers kept (each point one removal)."""
    n_layers, losses = int(rec["n_layers"]), [rec["full_loss"], *rec["loss_after_removal"]]
    kept = list(range(n_layers, n_layers - len(losses), -1))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(kept, losses, marker="o", color="tab:blue")
    for x, y, layer in zip(kept[1:], losses[1:], rec["removal_order"], strict=True):
        ax.annotate(str(layer), (x, y), textcoords="offset points", xytext=(0, 5), fontsize=7)
    ax.invert_xaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="layers kept (label: layer just removed)", ylabel="calibration task loss")
    ax.set_title("greedy layer removal")
    return _save(fig, path)


def write_plots(
    out_dir: Path,
    *,
    evals: Sequence[Record],
    scores: dict[str, Record],
    selections: Sequence[Record],
    finetune_log: Path | None = None,
    train_logs: Sequence[Path] = (),
    validation: pd.DataFrame | None = None,
    depth: pd.DataFrame | None = None,
) -> list[Path]:
    """Every figure the inputs allow, under ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [pareto_plot(evals, out_dir / "pareto.png")]
    if depth is not None and not depth.empty:
        from layerkd.report.depth import depth_plot

        written.append(depth_plot(depth, out_dir / "depth.png"))
    if scores:
        written.append(importance_heatmap(scores, out_dir / "importance.png"))
    if "greedy" in scores:
        written.append(greedy_curve(scores["greedy"], out_dir / "greedy.png"))
    if selections:
        ndcg: dict[str, dict[str, float]] = {}
        for e in evals:
            if e.get("layerset"):
                ndcg.setdefault(e["layerset"], {})[e.get("mode") or ""] = e["metrics"]["ndcg@5"]
        written.append(selection_map(selections, out_dir / "selection.png", ndcg))
    teacher_valid = None
    if finetune_log is not None:
        log = pd.read_parquet(finetune_log)
        teacher_valid = float(log["valid_ndcg@5"].max())
        written.append(
            training_curve(log, out_dir / "curve_teacher.png", "teacher fine-tuning", who="teacher")
        )
    for p in train_logs:
        name = Path(p).parent.name
        title = f"student {name} distillation"
        written.append(
            training_curve(pd.read_parquet(p), out_dir / f"curve_{name}.png", title, teacher_valid)
        )
    if validation is not None and not validation.empty:
        written.append(correlation_heatmap(validation, out_dir / "correlations.png"))
    return written
