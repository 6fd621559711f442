"""How should the teacher adapt to the task? Fine-tune it several ways on one prepared dataset
and print one row per variant: mode, trained depth, lr, training samples, epochs run, best
validation NDCG@5 under eval.primary's protocol (the epoch it came from) and minutes.

Reads what ``prepare_data`` and ``prepare_teacher`` wrote for ``--dataset`` in ``--root`` (run
``snakemake data/processed/D/samples.parquet results/D/teacher/base`` first) and fine-tunes with
the config's ``teacher.finetune`` settings, each variant overriding some of them:

    python benchmarks/teacher_study.py --root . --dataset gift_cards \
        --configfile config/real.yaml --variant top_layers=2 --variant top_layers=8 \
        --variant mode=lora --variant top_layers=30,lr=0.0002 --epochs 20 --patience 3

Nothing is written to the pipeline's results: each variant's teacher goes into a temporary
directory. Timings are wall-clock on this machine (compare variants within one run).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from layerkd.config import load_config
from layerkd.runtime import setup
from layerkd.teacher.stages import finetune_teacher


def parse_variant(text: str) -> dict[str, Any]:
    """``key=value,key=value`` (values read as YAML) as a dict of ``teacher.finetune`` keys."""
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--configfile", nargs="*", default=[])
    ap.add_argument("--variant", action="append", required=True, help="key=value,... overrides")
    ap.add_argument("--epochs", type=int, help="epoch ceiling of every variant")
    ap.add_argument("--patience", type=int, help="early-stopping patience of every variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args(argv)
    setup(None, a.threads)
    config = load_config(a.root / "config" / "config.yaml", *a.configfile)
    t = config["teacher"]
    data = a.root / "data" / "processed" / a.dataset
    res = a.root / "results" / a.dataset / "teacher"
    n_train = int((pd.read_parquet(data / "samples.parquet")["split"] == "train").sum())
    rows = []
    for text in a.variant:
        cfg = {**t["finetune"], **parse_variant(text)}
        cfg.update({k: v for k, v in (("epochs", a.epochs), ("patience", a.patience)) if v})
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            log = finetune_teacher(
                backbone=res / "base",
                features=res / "item_features.pt",
                item_table=data / "items.parquet",
                samples=data / "samples.parquet",
                teacher=Path(tmp) / "teacher",
                train_log=Path(tmp) / "log.parquet",
                head_dim=t["head_dim"],
                max_prompt_tokens=t["max_prompt_tokens"],
                seed=t["seed"],
                finetune_cfg={**cfg, "checkpoint_every": 0},
                item_table_mode=t["item_table"],
                interactions=data / "interactions.parquet",
                primary=config["eval"]["primary"],
                checkpoints=None,
                device=t["device"],
                dtype=t["dtype"],
                device_map=t["device_map"],
            )
            minutes = (time.perf_counter() - t0) / 60
        evals = log.dropna(subset=["valid_ndcg@5"])
        best = evals.loc[evals["valid_ndcg@5"].idxmax()]
        row = {
            "variant": text,
            "mode": cfg["mode"],
            "depth": cfg["top_layers"] if cfg["mode"] == "top" else f"lora r{cfg['lora_r']}",
            "lr": cfg["lr"],
            "train_samples": n_train,
            "epochs_run": int(log["epoch"].max()),
            "epoch_ceiling": cfg["epochs"],
            "valid_ndcg@5_by_epoch": [round(float(v), 4) for v in evals["valid_ndcg@5"]],
            "best_valid_ndcg@5": float(best["valid_ndcg@5"]),
            "best_epoch": int(best["epoch"]),
            "minutes": minutes,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    df = pd.DataFrame(rows)
    print(df.drop(columns="valid_ndcg@5_by_epoch").to_markdown(index=False, floatfmt=".4g"))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return df


if __name__ == "__main__":
    main()
