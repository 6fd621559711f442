"""The report: one row per model (teacher, students, reference rankers) with its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from layerkd.io import atomic_path, read_json, write_json

METRICS = ("ndcg@5", "ndcg@10", "mrr", "hr@1", "hr@5", "hr@10")


def summary_rows(evals: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, selection): students chosen by several (method, strategy) pairs
    appear once per pair, with the same metrics."""
    digests = {e["candidates_sha256"] for e in evals}
    if len(digests) != 1:
        raise ValueError("models were evaluated on different test candidates")
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    t_ndcg = teacher["metrics"]["ndcg@5"] if teacher else float("nan")
    rows = []
    for e in evals:
        sels = e.get("selections") or [{"method": None, "strategy": None}]
        for s in sels:
            row: dict[str, Any] = {
                "model": e["model"],
                "kind": e["kind"],
                "method": s.get("method"),
                "strategy": s.get("strategy"),
                "layers": "-".join(map(str, e["layers"])) if e.get("layers") else None,
                "n_layers": len(e["layers"]) if e.get("layers") else None,
                "mode": e.get("mode"),
                "params": e.get("params"),
            }
            for m in METRICS:
                row[m] = e["metrics"][m]
                row[f"{m}_lo"], row[f"{m}_hi"] = e["ci"][m]
            row["retention"] = e["metrics"]["ndcg@5"] / t_ndcg if teacher else None
            row["latency_ms_b1"] = e.get("latency_ms_b1")
            rows.append(row)
    order = {"teacher": 0, "student": 1, "reference": 2}
    df = pd.DataFrame(rows)
    df["_o"] = df["kind"].map(order)
    return df.sort_values(["_o", "model", "method"], na_position="first").drop(columns="_o")


def to_markdown(df: pd.DataFrame) -> str:
    """A compact Markdown table: metrics as mean [lo, hi]."""
    cols = ["model", "method", "strategy", "layers", "params"]
    out = df[cols].copy()
    for m in ("ndcg@5", "ndcg@10", "mrr", "hr@10"):
        out[m] = [
            f"{v:.4f} [{lo:.4f}, {hi:.4f}]"
            for v, lo, hi in zip(df[m], df[f"{m}_lo"], df[f"{m}_hi"], strict=True)
        ]
    out["retention"] = [f"{r:.3f}" if pd.notna(r) else "" for r in df["retention"]]
    return out.fillna("").to_markdown(index=False)


def report_stage(eval_paths: list[Path], out_dir: Path) -> pd.DataFrame:
    """Write ``summary.csv``, ``summary.md`` and ``summary.json``."""
    evals = [read_json(p) for p in eval_paths]
    df = summary_rows(evals)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "summary.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text("# layerkd summary\n\n" + to_markdown(df) + "\n")
    write_json(out_dir / "summary.json", df.to_dict(orient="records"))
    return df
