"""Benchmark of the teacher pass (prints its figures; not a test).

On the same calibration samples it measures:
  * a plain batched forward+backward (sdpa attention, no hooks),
  * the full statistics pass of ``teacher_cache`` (every method but ablation, one pass),
  * their ratio (goal ≤ 1.3),
  * forward FLOP/s against a measured fp32 matmul peak on this machine (goal ≥ 80%),
  * the number of forward calls the statistics pass made (one per batch = a single pass).

Usage (after the default run has produced the fine-tuned teacher):
    python benchmarks/teacher_pass.py --dataset synthetic [--batch-size 16] [--samples 32]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from layerkd.models.backbone import decoder
from layerkd.models.recmodel import load_features, load_recmodel, task_loss
from layerkd.models.samples import load_split
from layerkd.models.text import batches
from layerkd.teacher.cache import calibration_pass


def matmul_peak(sizes: tuple[int, ...] = (1024, 2048, 4096), repeats: int = 8) -> float:
    """Measured fp32 matmul GFLOP/s: the best over square sizes of the best of ``repeats``
    timed products, each after two warm-up products (a single size can land on a slow
    blocking or a cold thread pool and understate the peak)."""
    best_rate = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(2):
            a @ b
        best = float("inf")
        for _ in range(repeats if n <= 2048 else 3):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        best_rate = max(best_rate, 2 * n**3 / best / 1e9)
    return best_rate


def forward_flops(model, data) -> float:
    """2 × (non-embedding decoder params) per real token + attention score/value products."""
    lm = decoder(model.lm)
    params = sum(p.numel() for n, p in lm.named_parameters() if "embed" not in n)
    cfg = model.lm.config
    head_dim = getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    flops = 0.0
    for ids in data.ids:
        t = len(ids)
        flops += 2 * params * t + 4 * t * t * cfg.num_attention_heads * head_dim * len(lm.layers)
    return flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (best is kept)")
    ap.add_argument("--max-prompt-tokens", type=int, default=64, help="as in the config")
    args = ap.parse_args()
    root, proc = Path("results") / args.dataset, Path("data/processed") / args.dataset
    items, samples = (
        pd.read_parquet(proc / "items.parquet"),
        pd.read_parquet(proc / "samples.parquet"),
    )
    model, tok, _ = load_recmodel(
        root / "teacher/final", load_features(root / "teacher/item_features.pt", items)
    )
    data = load_split(samples, items, tok, "calibration", args.max_prompt_tokens)
    data = data.subset(range(min(args.samples, len(data))))
    bs = args.batch_size
    print(
        f"threads {torch.get_num_threads()}, samples {len(data)}, batch {bs}, "
        f"tokens {sum(len(r) for r in data.ids)}"
    )
    peak = matmul_peak()
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s")

    def plain_forward() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for rng in batches(len(data), bs):
                b, cand, _ = data.batch(rng)
                model(b, cand)
        return time.perf_counter() - t0

    def plain_fwd_bwd() -> float:
        t0 = time.perf_counter()
        for rng in batches(len(data), bs):
            b, cand, rating = data.batch(rng)
            model.zero_grad(set_to_none=True)
            task_loss(model(b, cand), rating, 0.1, reduction="sum").backward()
        return time.perf_counter() - t0

    plain_forward()  # warm-up
    fwd = min(plain_forward() for _ in range(args.repeats))
    gflops = forward_flops(model, data) / fwd / 1e9
    peak = max(peak, matmul_peak())  # measured again right after: the higher of the two
    print(f"fp32 matmul peak (after): {peak:.1f} GFLOP/s")
    print(f"forward: {fwd:.2f} s, {gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of matmul peak")
    calls = {"n": 0}

    def stats_pass() -> float:
        handle = decoder(model.lm).register_forward_hook(
            lambda *_: calls.__setitem__("n", calls["n"] + 1)
        )
        calls["n"] = 0
        t0 = time.perf_counter()
        calibration_pass(model, data, bs, 0.1)
        handle.remove()
        return time.perf_counter() - t0

    # interleaved, best of ``repeats`` each: this machine's speed drifts by 20-30% over minutes
    base, stats = float("inf"), float("inf")
    for _ in range(args.repeats):
        base = min(base, plain_fwd_bwd())
        stats = min(stats, stats_pass())
    n_batches = len(batches(len(data), bs))
    print(f"plain forward+backward: {base:.2f} s")
    print(
        f"statistics pass (fisher, gradient, taylor, attention, block_influence, angular): "
        f"{stats:.2f} s"
    )
    print(f"ratio statistics / plain: {stats / base:.2f} (goal <= 1.3)")
    print(
        f"decoder forward calls in the statistics pass: {calls['n']} for {n_batches} batches "
        f"({'single pass' if calls['n'] == n_batches else 'NOT a single pass'})"
    )


if __name__ == "__main__":
    main()
