"""The teacher in several settings (``teacher.items`` mode, objective, ...) against SASRec and
most-popular on one dataset: one row per run directory, from the evaluation files the pipeline
wrote there (``results/{dataset}/eval/{teacher,sasrec,popular}.json``) and its benchmarks.

    snakemake --cores 2 results/D/eval/teacher.json results/D/eval/sasrec.json \\
        results/D/eval/popular.json --configfile config/real.yaml mode.yaml   # in each RUN dir
    python benchmarks/teacher_modes.py --dataset D --run ids=RUN1 --run text=RUN2

Columns: test NDCG@5 under the full and the sampled protocol, the paired difference to SASRec
on the same users (bootstrap 95% interval, two-sided p), the teacher's validation NDCG@5 (the
sampled candidates of the test users' validation samples), SASRec's and most-popular's test
NDCG@5, and the minutes of the teacher's jobs (prepare, fine-tune, evaluate; from Snakemake's
benchmark files, so only comparable between runs on one machine).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd

from layerkd.evaluation.significance import compare

TEACHER_JOBS = ("prepare_teacher", "finetune_teacher", "evaluate_teacher")


def _protocol(rec: dict[str, Any], protocol: str) -> dict[str, Any]:
    """The record's per-user arrays under ``protocol`` (the full ranking lives under ``full``)."""
    part = rec["full"] if protocol == "full" else rec
    return {"model": rec["model"], "user_ids": rec["user_ids"], "per_user": part["per_user"],
            "metrics": part["metrics"]}  # fmt: skip


def _minutes(bench: Path) -> float:
    """Wall minutes of the teacher's jobs (0 for a job without a benchmark file)."""
    total = 0.0
    for job in TEACHER_JOBS:
        path = bench / f"{job}.tsv"
        if path.is_file():
            with open(path) as fh:
                total += float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    return total / 60


def row(name: str, root: Path, dataset: str, n_boot: int = 1000) -> dict[str, Any]:
    """One table row for the run in ``root``."""
    ev = root / "results" / dataset / "eval"
    t, s, p = (json.loads((ev / f"{m}.json").read_text()) for m in ("teacher", "sasrec", "popular"))
    out: dict[str, Any] = {"run": name, "items": t.get("items", "text")}
    for protocol in ("full", "sampled"):
        c = compare(_protocol(t, protocol), _protocol(s, protocol), "ndcg@5", n_boot=n_boot, seed=0)
        out[f"teacher {protocol}"] = c["mean"]
        out[f"vs SASRec {protocol}"] = (
            f"{c['diff']:+.4f} [{c['diff_lo']:+.4f}, {c['diff_hi']:+.4f}]"
        )
        out[f"p {protocol}"] = c["p_bootstrap"]
        out[f"SASRec {protocol}"] = c["mean_versus"]
        out[f"popular {protocol}"] = _protocol(p, protocol)["metrics"]["ndcg@5"]
    out["teacher valid (sampled)"] = (t.get("valid") or {}).get("metrics", {}).get("ndcg@5")
    out["users"] = len(t["user_ids"])
    out["teacher minutes"] = _minutes(root / "results" / dataset / "benchmarks")
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--run", action="append", required=True, help="NAME=DIRECTORY")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args(argv)
    runs = [r.partition("=") for r in a.run]
    df = pd.DataFrame([row(n, Path(d), a.dataset, a.bootstrap) for n, _, d in runs])
    print(df.to_markdown(index=False, floatfmt=".4f"))
    if a.json:
        a.json.write_text(df.to_json(orient="records", indent=2))
    return df


if __name__ == "__main__":
    main()
