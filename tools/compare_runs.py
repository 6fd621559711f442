"""Compare two finished pipeline trees bit for bit: what a refactor must not change.

    .venv/bin/python tools/compare_runs.py RUN_A RUN_B [--dataset synthetic]

Compared, for one dataset: the fine-tuned teacher (every tensor of its safetensors files),
the teacher cache (every tensor, read from either format: the single ``cache.pt`` of earlier
versions or the ``cache.json`` index over safetensors chunks; hidden states that one format
holds and the other does not write are reported as a note), the calibration statistics, every
score file,
every selection, and the per-user metrics (and candidate digest) of every evaluation file: every
key both versions of a file hold (a key one version adds, such as full-ranking metrics, is not
a difference). Timing fields (latency, throughput, the seconds of greedy and of SASRec training)
are left out: they are measurements of the machine, not results. Files in one tree only are
listed apart. Prints one line per file and exits 1 when a file both trees hold differs.
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

#: wall-clock fields: measurements of the machine, not results
TIMING = ("latency_ms_b1", "throughput_users_s", "seconds", "train_seconds")


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


def cache_tensors(teacher_dir: Path) -> dict[str, Any]:
    """Every tensor of a teacher cache, flat, in sample order, whichever format wrote it."""
    if (teacher_dir / "cache.pt").exists():
        return _tensors(torch.load(teacher_dir / "cache.pt", weights_only=False))
    from layerkd.teacher.cache import merge_calibration
    from layerkd.teacher.store import TeacherCache, load_calibration

    shards = sorted(p for p in (teacher_dir / "cache").iterdir() if p.is_dir())
    out = _tensors({"calibration": merge_calibration([load_calibration(d) for d in shards])})
    cache = TeacherCache(teacher_dir / "cache.json")
    names = ["scores", "user", *(["hidden"] if cache.has_hidden else [])]
    out.update({f"train.{n}": cache.rows(n, range(len(cache))) for n in names})
    out["train_index"] = torch.arange(len(cache))
    return out


def compare_cache(a: Path, b: Path) -> tuple[str | None, str | None]:
    """(what differs or None, a note on tensors only one side writes by design)."""
    ta, tb = cache_tensors(a), cache_tensors(b)
    optional = {"train.hidden"}
    note = sorted((set(ta) ^ set(tb)) & optional)
    keys = set(ta) & set(tb)
    if (set(ta) ^ set(tb)) - optional:
        return f"keys differ: {sorted((set(ta) ^ set(tb)) - optional)[:5]}", None
    if "calibration.n" in keys and not isinstance(ta["calibration.n"], torch.Tensor):
        ta["calibration.n"], tb["calibration.n"] = (
            int(ta["calibration.n"]),
            int(tb["calibration.n"]),
        )
    bad = [k for k in sorted(keys) if not _same(ta[k], tb[k])]
    why = None if not bad else f"{len(bad)} of {len(keys)} tensors differ, e.g. {bad[:3]}"
    return why, (
        f"only one side holds {note} (written only when a step reads them)" if note else None
    )


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
        if isinstance(ja, dict) and isinstance(jb, dict):
            common = (set(ja) & set(jb)) - set(TIMING)
            bad = sorted(k for k in common if ja[k] != jb[k])
            return None if not bad else f"JSON keys differ: {bad}"
        return None if ja == jb else "JSON differs"
    if ta.keys() != tb.keys():
        return f"keys differ: {sorted(set(ta) ^ set(tb))[:5]}"
    bad = [k for k in ta if not _same(ta[k], tb[k])]
    return None if not bad else f"{len(bad)} of {len(ta)} entries differ, e.g. {bad[:3]}"


def files(root: Path, dataset: str) -> list[Path]:
    """The compared files of ``root``, relative to it."""
    res = root / "results" / dataset
    found = [*res.glob("teacher/final/*.safetensors"), res / "teacher/cache_stats.npz"]
    found += [*res.glob("scores/*.json")]
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
    teacher = Path("results") / args.dataset / "teacher"
    why, note = compare_cache(args.run_a / teacher, args.run_b / teacher)
    print(f"identical {teacher}/cache" if why is None else f"DIFFERENT {teacher}/cache: {why}")
    if note:
        print(f"  note: {note}")
    failed, only = int(why is not None), 0
    for rel in sorted(set(rel_a) | set(rel_b)):
        a, b = args.run_a / rel, args.run_b / rel
        if not (a.exists() and b.exists()):
            print(f"only in {'A' if a.exists() else 'B'} {rel}")
            only += 1
            continue
        why = compare_files(a, b)
        print(f"identical {rel}" if why is None else f"DIFFERENT {rel}: {why}")
        failed += why is not None
    total = len(set(rel_a) & set(rel_b)) + 1
    print(f"{total - failed} of {total} compared identical, {failed} different;", end=" ")
    print(f"{only} in one tree only")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
