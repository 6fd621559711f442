"""Peak resident memory of the steps that touch the teacher cache, as the data grows.

    .venv/bin/python benchmarks/cache_memory.py [--sizes 1000 4000 16000] [--work DIR]

A tiny random Llama with 32 layers (hidden 64) is the teacher; for each number of training
samples the teacher_cache, merge_cache and distill stages run as real subprocesses
(``python -m layerkd STAGE``, one thread), with the hidden states of every layer in the cache
(``distill.w_hidden > 0``: the largest cache), and the peak RSS of each process is read from the
kernel (``os.wait4``). Prints the cache size and each step's peak RSS per size, and the ratio
of the largest size to the smallest: the cache grows with the data, the steps' memory should
not (the goal: at most 1.3x from 1k to 16k samples while the cache grows 16x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tabulate import tabulate

from layerkd.config import defaults
from layerkd.io import save_torch, write_json
from layerkd.models.backbone import build_tiny
from layerkd.models.recmodel import RecHeads, RecModel, save_recmodel

TINY = {"num_layers": 32, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4}
N_ITEMS, N_CAND, LAYERS = 200, 10, [0, 4, 8, 12, 16, 20, 24, 31]
WORDS = "red blue green shoe cup lamp book pen coffee yoga tent stove mug sock hat bag".split()


def workspace(root: Path, n_train: int, seed: int = 0) -> dict[str, Path]:
    """Items, samples (``n_train`` training rows), features and a saved random teacher."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"i{n}" for n in range(N_ITEMS)]
    texts = [f"{WORDS[n % 16]} {WORDS[(7 * n + 3) % 16]} {n}" for n in range(N_ITEMS)]
    pd.DataFrame({"item_id": ids, "title": texts, "text": texts}).to_parquet(root / "items.parquet")
    rows = []
    for split, n in (("train", n_train), ("valid", 64), ("calibration", 32)):
        for u in range(n):
            seq = rng.choice(N_ITEMS, size=3 + N_CAND, replace=False)
            cand = [ids[i] for i in seq[3:]]
            rows.append({"split": split, "user_id": f"u{u}", "history": [ids[i] for i in seq[:3]],
                         "target": cand[0], "target_rating": 4.0, "candidates": cand})  # fmt: skip
    pd.DataFrame(rows).to_parquet(root / "samples.parquet")
    lm, tok = build_tiny(TINY, texts, seed)
    torch.manual_seed(seed)
    feats = torch.randn(N_ITEMS, 8)
    save_torch(root / "features.pt", {"item_ids": ids, "features": feats})
    teacher = RecModel(lm, RecHeads(TINY["hidden_size"], 8, N_ITEMS, 16), feats)
    meta = {"kind": "teacher", "layers": list(range(32)), "teacher_layers": 32}
    save_recmodel(teacher, tok, root / "teacher", meta)
    sel = [{"method": "none", "strategy": "uniform", "repeat": 0}]
    write_json(root / "layerset.json", {"layerset": "L-bench", "layers": LAYERS, "selections": sel})
    names = {"items": "items.parquet", "samples": "samples.parquet", "features": "features.pt",
             "teacher": "teacher", "layerset": "layerset.json"}  # fmt: skip
    return {k: root / v for k, v in names.items()}


def run(stage: str, **kwargs: object) -> float:
    """Run one stage as a subprocess; its peak RSS in MB."""
    cmd = [sys.executable, "-m", "layerkd", stage, "--threads", "1"]
    for k, v in kwargs.items():
        cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v, default=str)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} failed:\n{err.decode()[-3000:]}")
    return usage.ru_maxrss / 1024  # KB on Linux


def measure(root: Path, n_train: int) -> dict[str, float]:
    """Peak RSS (MB) of the three steps, the cache size (MB) and wall times at ``n_train``."""
    ws = workspace(root, n_train)
    place = {"device": "cpu", "dtype": "fp32", "device_map": None}
    shared = {"features": ws["features"], "item_table": ws["items"], "samples": ws["samples"]}
    out, t0 = {"samples": n_train}, time.monotonic()
    out["cache_rss"] = run(
        "teacher_cache", teacher=ws["teacher"], **shared, shard=root / "cache/shard0", index=0,
        n_shards=1, batch_size=64, max_prompt_tokens=32, w_rating=0.1, hidden=True,
        chunk=1024, **place,
    )  # fmt: skip
    out["merge_rss"] = run(
        "merge_cache", shards=[root / "cache/shard0"], cache=root / "cache.json",
        stats=root / "cache_stats.npz", n_shards=1,
    )  # fmt: skip
    out["cache_mb"] = sum(p.stat().st_size for p in (root / "cache").rglob("*")) / 2**20
    run("build_student", teacher=ws["teacher"], features=ws["features"], item_table=ws["items"],
        samples=ws["samples"], layerset=ws["layerset"], cache=root / "cache.json",
        init=root / "init", mode="keep", seed=0, compact={})  # fmt: skip
    cfg = defaults("distill", epochs=1, batch_size=16, w_hidden=0.5, valid_samples=None)
    out["distill_rss"] = run(
        "distill", init=root / "init", **shared, cache=root / "cache.json", final=root / "final",
        train_log=root / "log.parquet", max_prompt_tokens=32, distill_cfg=cfg, seed=0,
        checkpoints=None, **place,
    )  # fmt: skip
    out["seconds"] = time.monotonic() - t0
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="cache_memory."))
    rows = [measure(work / f"n{n}", n) for n in args.sizes]
    cols = ["samples", "cache_mb", "cache_rss", "merge_rss", "distill_rss", "seconds"]
    print(tabulate([[r[c] for c in cols] for r in rows], headers=cols, floatfmt=".1f"))
    lo, hi = rows[0], rows[-1]
    grow = hi["cache_mb"] / lo["cache_mb"]
    print(f"\nfrom {lo['samples']} to {hi['samples']} samples: cache x{grow:.1f}")
    for step in ("cache_rss", "merge_rss", "distill_rss"):
        print(f"  peak RSS {step[:-4]:8s} x{hi[step] / lo[step]:.2f}")


if __name__ == "__main__":
    main()
