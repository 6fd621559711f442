"""Across datasets: does a conclusion survive another dataset?

For every pair of datasets and every method, the Spearman correlation of the per-layer importance
(normalised scores; the same teacher, so the same layers), and every hypothesis's verdict per
dataset side by side. Written when the config runs two or more datasets.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from layerkd.evaluation.stats import spearman
from layerkd.io import atomic_path, read_json


def _dataset_of(path: Path) -> str:
    """``results/{dataset}/scores/x.json`` and ``results/{dataset}/report/x.json`` -> dataset."""
    return path.parent.parent.name


def importance_agreement(scores: list[Path]) -> pd.DataFrame:
    """Spearman of each method's normalised scores between every pair of datasets."""
    by: dict[str, dict[str, np.ndarray]] = {}
    for p in scores:
        rec = read_json(p)
        by.setdefault(rec["method"], {})[_dataset_of(p)] = np.asarray(rec["normalised"], float)
    rows = []
    for method, per in sorted(by.items()):
        for a, b in itertools.combinations(sorted(per), 2):
            if len(per[a]) != len(per[b]):
                raise ValueError(f"{method}: {a} and {b} score different layer counts")
            rows.append({"method": method, "dataset_a": a, "dataset_b": b,
                         "spearman": spearman(per[a], per[b])})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "dataset_a", "dataset_b", "spearman"])


def verdicts(hypotheses: list[Path]) -> pd.DataFrame:
    """One row per hypothesis, one column per dataset: its verdict there."""
    table: dict[str, dict[str, str]] = {}
    titles: dict[str, str] = {}
    for p in hypotheses:
        for h in read_json(p):
            table.setdefault(h["key"], {})[_dataset_of(p)] = h["verdict"]
            titles[h["key"]] = h["title"]
    df = pd.DataFrame.from_dict(table, orient="index").sort_index(axis=1)
    df.insert(0, "hypothesis", [titles[k] for k in df.index])
    return df.rename_axis("key").reset_index()


def datasets_stage(
    *, scores: list[Path], hypotheses: list[Path], md: Path, csv: Path, datasets: list[str]
) -> pd.DataFrame:
    """``results/datasets/comparison.md`` and ``importance_spearman.csv`` over ``datasets``."""
    found = {_dataset_of(p) for p in [*scores, *hypotheses]}
    if found != set(datasets):
        raise ValueError(f"inputs are of datasets {sorted(found)}, expected {sorted(datasets)}")
    agree, verdict = importance_agreement(scores), verdicts(hypotheses)
    with atomic_path(csv) as tmp:
        agree.to_csv(tmp, index=False)
    text = [
        f"# layerkd across datasets: {', '.join(sorted(datasets))}",
        "",
        "## Hypotheses per dataset",
        "",
        verdict.to_markdown(index=False),
        "",
        "## Layer importance between datasets (Spearman of the normalised per-layer scores)",
        "",
        agree.to_markdown(index=False, floatfmt=".3f") if not agree.empty else "(no pairs)",
        "",
    ]
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(text), encoding="utf-8")
    return agree
