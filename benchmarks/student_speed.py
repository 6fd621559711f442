"""Student vs teacher speed on the same test samples, and distillation throughput.

Usage (after the pipeline has run)::

    .venv/bin/python benchmarks/student_speed.py [--config config/config.yaml]
        [--dataset synthetic] [--student ID ...] [--n 24] [--steps 6] [--threads 2]

For the teacher and each student (default: every distilled student of the dataset) it prints
the user-tower latency at batch 1 (median over ``--n`` test samples, the same for every
model), the throughput at batch 32 on the same 32 samples, and the parameter count. Then it
times ``--steps`` distillation steps of each student's initial weights on the cached teacher
outputs (training samples/s) with a call counter on every teacher module: the counter must
stay at 0, i.e. distillation never runs the teacher.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from layerkd.config import load_config
from layerkd.models.fit import Run, step
from layerkd.models.recmodel import RecModel, load_features, load_recmodel
from layerkd.models.samples import SplitData, load_split
from layerkd.models.train import epoch_order
from layerkd.selection.names import StudentName
from layerkd.student.compact import load_alignment
from layerkd.student.distill import DistillParams, distill_setup
from layerkd.teacher.store import TeacherCache


@torch.no_grad()
def speeds(models: dict[str, RecModel], data: SplitData, n: int) -> dict[str, tuple[float, float]]:
    """Per model: (median latency in ms at batch 1 over ``n`` samples, users/s at batch 32).
    Models are timed in turn on each sample, so load changes hit all of them alike."""
    lat: dict[str, list[float]] = {k: [] for k in models}
    busy = dict.fromkeys(models, 0.0)
    for m in models.values():
        m.eval()
        m(*data.batch([0])[:2])  # warm-up
    for i in range(min(n, len(data))):
        b, cand, _ = data.batch([i])
        for name, m in models.items():
            t0 = time.perf_counter()
            m(b, cand)
            lat[name].append(time.perf_counter() - t0)
    b, cand, _ = data.batch(range(min(32, len(data))))
    for _ in range(3):
        for name, m in models.items():
            t0 = time.perf_counter()
            m(b, cand)
            busy[name] += time.perf_counter() - t0
    return {k: (1000 * statistics.median(lat[k]), 3 * len(cand) / busy[k]) for k in models}


def count_calls(model: torch.nn.Module) -> list[int]:
    """A counter that every forward call of any submodule of ``model`` increments."""
    counter = [0]

    def hook(*_: object) -> None:
        counter[0] += 1

    for mod in model.modules():
        mod.register_forward_pre_hook(hook)
    return counter


def train_speed(
    init_dir: Path, feats: torch.Tensor, cache: dict, train: SplitData, cfg: dict, steps: int
) -> float:
    """Training samples/s of ``steps`` distillation steps from ``init_dir``."""
    model, _, meta = load_recmodel(init_dir, feats)
    align = load_alignment(init_dir, int(meta.get("teacher_hidden", 0)) or 1)
    keys = {k: v for k, v in cfg.items() if k not in ("seeds", "train_embeddings")}
    p = DistillParams(**keys, seed=0, train_embeddings=meta.get("init") == "random")
    task, nets, params = distill_setup(model, meta["layers"], cache, train, train, p, align=align)
    run = Run(nets, params, p, len(train))
    nets.train()
    order = epoch_order(len(train), p.batch_size, p.seed, 1)
    groups = [order[i : i + p.grad_accum] for i in range(0, len(order), p.grad_accum)]
    step(task, run, groups[0])  # warm-up
    t0 = time.perf_counter()
    done = 0
    for s in range(steps):
        group = groups[(s + 1) % len(groups)]
        step(task, run, group)
        done += sum(len(g) for g in group)
    return done / (time.perf_counter() - t0)


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    ap.add_argument("--dataset", default=None, help="default: the config's first dataset")
    ap.add_argument(
        "--student", nargs="*", default=None, help="student ids or directories (default: all)"
    )
    ap.add_argument("--n", type=int, default=24, help="samples timed at batch 1")
    ap.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the config's")
    ap.add_argument("--steps", type=int, default=6, help="distillation steps timed")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    ds = args.dataset or cfg["datasets"][0]["name"]
    res, proc = Path("results") / ds, Path("data/processed") / ds
    items = pd.read_parquet(proc / "items.parquet")
    samples = pd.read_parquet(proc / "samples.parquet")
    feats = load_features(res / "teacher" / "item_features.pt", items)
    mpt = args.max_prompt_tokens or int(cfg["teacher"]["max_prompt_tokens"])
    teacher, tok, _ = load_recmodel(res / "teacher" / "final", feats)
    test = load_split(samples, items, tok, "test", mpt)
    train = load_split(samples, items, tok, "train", mpt)
    dirs: dict[str, Path] = {}
    for sid in args.student or sorted(p.parent.name for p in res.glob("students/*/final")):
        d = Path(sid) if Path(sid).is_dir() else res / "students" / sid
        dirs[d.name] = d
    models = {"teacher": teacher}
    for sid, d in dirs.items():
        models["student/" + sid] = load_recmodel(d / "final", feats)[0]
    timed = speeds(models, test, args.n)
    t_lat = timed["teacher"][0]
    print(f"{'model':<44} {'params':>12} {'ms @ b1':>9} {'users/s @ b32':>14} {'speedup':>8}")
    for name, m in models.items():
        lat, thr = timed[name]
        n_p = sum(p.numel() for p in m.parameters())
        print(f"{name:<44} {n_p:>12,} {lat:>9.1f} {thr:>14.1f} {t_lat / lat:>8.2f}")
    cache = TeacherCache(res / "teacher" / "cache.json")
    calls = count_calls(teacher)
    dcfg = {k: v for k, v in cfg["distill"].items() if k != "checkpoint_every"}
    for sid in dirs:
        name = StudentName.parse(sid)
        build = "keep" if name.mode == "keep" else f"compact__s{name.seed}"
        init = res / "students" / "inits" / f"{name.layerset}__{build}"  # rule build_student
        sps = train_speed(init, feats, cache, train, dcfg, args.steps)
        print(f"distillation of {sid}: {sps:.1f} training samples/s ({args.steps} steps)")
    print(f"teacher forward calls during distillation: {calls[0]}")
    if calls[0]:
        raise SystemExit("the teacher was called during distillation")


if __name__ == "__main__":
    main()
