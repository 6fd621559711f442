"""Compare two finished pipeline trees bit for bit: what a refactor must not change.

    .venv/bin/python tools/compare_runs.py RUN_A RUN_B [--dataset synthetic]

Compared, for one dataset: the fine-tuned teacher (every tensor of its safetensors files),
the teacher cache (every tensor of ``cache.pt``), the calibration statistics, every score file,
every selection, and the per-user metrics (and candidate digest) of every evaluation file. Timing
fields (latency, throughput) are left out: they are measurements of the machine, not results.
Prints one line per file and exits 1 when anything differs or is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

TIMING = ("latency_ms_b1", "throughput_users_s")


def _tensors(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor and array in a nested dict/list, by path."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}{k}."))
        return out
    if isinstance(obj, list | tuple):
        out = {}
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): obj}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def compare_files(a: Path, b: Path) -> str | None:
    """``None`` when the two files hold bitwise-identical results, else what differs."""
    if a.suffix == ".safetensors":
        ta, tb = load_file(a), load_file(b)
    elif a.suffix == ".pt":
        ta, tb = (_tensors(torch.load(p, weights_only=False)) for p in (a, b))
    elif a.suffix == ".npz":
        with np.load(a) as za, np.load(b) as zb:
            ta, tb = dict(za), dict(zb)
    else:
        ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
        for rec in (ja, jb):
            if isinstance(rec, dict):
                for key in TIMING:
                    rec.pop(key, None)
        return None if ja == jb else "JSON differs"
    if ta.keys() != tb.keys():
        return f"keys differ: {sorted(set(ta) ^ set(tb))[:5]}"
    bad = [k for k in ta if not _same(ta[k], tb[k])]
    return None if not bad else f"{len(bad)} of {len(ta)} entries differ, e.g. {bad[:3]}"


def files(root: Path, dataset: str) -> list[Path]:
    """The compared files of ``root``, relative to it."""
    res = root / "results" / dataset
    found = [*res.glob("teacher/final/*.safetensors"), res / "teacher/cache.pt"]
    found += [res / "teacher/cache_stats.npz", *res.glob("scores/*.json")]
    found += [*res.glob("selections/*.json"), *res.glob("eval/*.json"), *res.glob("eval/*/*.json")]
    return sorted(p.relative_to(root) for p in found)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--dataset", default="synthetic")
    args = ap.parse_args(argv)
    rel_a, rel_b = files(args.run_a, args.dataset), files(args.run_b, args.dataset)
    failed = 0
    for rel in sorted(set(rel_a) | set(rel_b)):
        a, b = args.run_a / rel, args.run_b / rel
        if not (a.exists() and b.exists()):
            print(f"MISSING   {rel} (only in {'A' if a.exists() else 'B'})")
            failed += 1
            continue
        why = compare_files(a, b)
        print(f"identical {rel}" if why is None else f"DIFFERENT {rel}: {why}")
        failed += why is not None
    print(f"{len(set(rel_a) | set(rel_b)) - failed} identical, {failed} different or missing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
