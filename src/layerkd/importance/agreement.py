"""Agreement between importance methods: Spearman and Kendall rank correlations of every pair
of methods' per-layer scores, ablation (the measured ground truth) included when configured."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from layerkd.evaluation.stats import kendall, spearman
from layerkd.io import atomic_path, read_json


def correlation_table(scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows ``method_a, method_b, spearman, kendall`` for every unordered pair of methods."""
    rows = []
    for a, b in itertools.combinations(sorted(scores), 2):
        rows.append(
            {
                "method_a": a,
                "method_b": b,
                "spearman": spearman(scores[a], scores[b]),
                "kendall": kendall(scores[a], scores[b]),
            }
        )
    return pd.DataFrame(rows, columns=["method_a", "method_b", "spearman", "kendall"])


def correlation_matrix(table: pd.DataFrame, methods: list[str], col: str) -> pd.DataFrame:
    """Symmetric method × method matrix of ``col`` (1 on the diagonal)."""
    m = pd.DataFrame(np.eye(len(methods)), index=methods, columns=methods)
    for r in table.itertuples():
        m.loc[r.method_a, r.method_b] = m.loc[r.method_b, r.method_a] = getattr(r, col)
    return m


def heatmap(matrix: pd.DataFrame, title: str, dest: Path) -> None:
    """Write an annotated heatmap PNG of a correlation matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * n, 1.0 + 0.7 * n))
    im = ax.imshow(matrix.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(n), matrix.index)
    for i, j in itertools.product(range(n), range(n)):
        v = matrix.iat[i, j]
        ax.text(j, i, "–" if pd.isna(v) else f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def agreement_stage(
    *, scores: list[Path], csv: Path, md: Path, png: Path, methods: list[str]
) -> pd.DataFrame:
    """Rank correlations between the ``methods``' per-layer ``scores`` (ablation is the
    measured one): the table as ``csv`` and ``md``, the Spearman heatmap as ``png``."""
    recs = [read_json(p) for p in scores]
    by_method = {r["method"]: np.asarray(r["raw"], dtype=float) for r in recs}
    if sorted(by_method) != sorted(methods):
        raise ValueError(f"score files hold methods {sorted(by_method)}, expected {methods}")
    table = correlation_table(by_method)
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(md) as tmp:
        tmp.write_text(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    names = sorted(by_method)
    title = "Spearman correlation of per-layer scores"
    if "ablation" in by_method:
        title += " (ablation = measured)"
    heatmap(correlation_matrix(table, names, "spearman"), title, png)
    return table
