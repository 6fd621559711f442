"""GPU check of the cluster plan at Llama-3-8B's shapes, with random weights (nothing is
downloaded): the teacher pass, one LoRA fine-tune step and an 8-layer keep student, as one JSON.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--samples 256] [--budget-s 420]
    python benchmarks/gpu_check.py --tiny --out tmp.json      # the same code on CPU, in seconds
    python benchmarks/gpu_check.py --configfile config/llama3_8b.yaml config/slmrec.yaml  # ids

Settings (prompt length, batch sizes, LoRA rank, k, ...) come from config/config.yaml +
``--configfile`` (default config/llama3_8b.yaml), as the pipeline would run them; in the ID
modes of ``teacher.items`` the prompts are the instruction plus item slots (a random item table
of ``sasrec.hidden``), as long as :func:`layerkd.plan.prompt_tokens` says. Sections:

* ``teacher_pass``: :func:`~layerkd.teacher.cache.calibration_pass` (forward + backward with the
  per-sample statistics hooks) on ``--samples`` synthetic prompts of teacher.max_prompt_tokens
  tokens; tokens/s, model FLOP utilisation (FLOPs as :mod:`layerkd.plan` counts them) against
  the card's dense bf16 peak, peak memory, and the plan's memory estimate beside it. A batch
  that runs out of memory is halved (each failed size is recorded).
* ``lora_step`` / ``lora_step_fp32``: one AdamW step of LoRA (peft, ``lora_targets``) + heads
  on a bf16 base, then on an fp32 base (what ``finetune_teacher`` runs today), timed after a
  warm-up step.
* ``speed``: latency at batch 1 and throughput at eval.batch_size of the teacher and of a keep
  student of selection.k evenly spaced layers (``keep_layers``), synchronised.

Timings use ``torch.cuda.synchronize``; peak memory is ``torch.cuda.max_memory_allocated``
(``ru_maxrss`` of the process on CPU). No timed assertions: this measures, it does not judge.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from layerkd.config import load_config  # noqa: E402
from layerkd.evaluation.evaluate import _speed  # noqa: E402
from layerkd.models.backbone import keep_layers  # noqa: E402
from layerkd.models.recmodel import RecHeads, RecModel, task_loss  # noqa: E402
from layerkd.models.samples import SplitData  # noqa: E402
from layerkd.plan import GPUS, KNOWN_SHAPES, Shape, plan_jobs, prompt_tokens  # noqa: E402
from layerkd.teacher.cache import calibration_pass  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEACHER = "meta-llama/Meta-Llama-3-8B"
TINY_SHAPE = Shape(4, 64, 128, 4, 2, 512, False)
TINY_SETTINGS = {"teacher": {"max_prompt_tokens": 32, "batch_size": 4, "head_dim": 16,
                             "finetune": {"batch_size": 2, "lora_r": 4, "lora_alpha": 8}},
                 "eval": {"batch_size": 4}, "selection": {"k": 2},
                 "data": {"n_train_candidates": 9}}  # fmt: skip
OOM = (torch.cuda.OutOfMemoryError,)


def sync(dev: torch.device) -> None:
    """Wait for the device's queued kernels."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reset_peak(dev: torch.device) -> None:
    """Free what can be freed and restart the peak-memory counter."""
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_gb(dev: torch.device) -> float:
    """Peak memory since :func:`reset_peak` (CUDA) or of the process (CPU), in GB."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def matmul_tflops(dev: torch.device, dtype: torch.dtype, n: int) -> float:
    """Best of 5 timed ``n x n`` matmuls in ``dtype`` after a warm-up (TFLOP/s)."""
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        sync(dev)
        t0 = time.perf_counter()
        a @ b
        sync(dev)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e12


def build(
    s: Shape, dev: torch.device, dtype: torch.dtype, n_items: int, dim: int, items: str = "text"
) -> RecModel:
    """A random-weight LlamaForCausalLM of shape ``s`` built on ``dev`` in ``dtype``, wrapped in a
    RecModel with random heads (fp32) and item features; in the ID modes of ``teacher.items`` a
    random item table of width ``dim``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                      num_hidden_layers=s.layers, num_attention_heads=s.heads,
                      num_key_value_heads=s.kv_heads, max_position_embeddings=8192,
                      rope_theta=500000.0, tie_word_embeddings=s.tied, pad_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    with torch.device(dev):
        lm = LlamaForCausalLM(cfg).to(dtype)
        width = 0 if items == "ids" else s.hidden
        table = None if items == "text" else torch.randn(n_items, dim) * dim**-0.5
        heads = RecHeads(s.hidden, width, n_items, dim, items=items, table=table)
        feats = torch.randn(n_items, width)
    return RecModel(lm, heads, feats).eval()


def synthetic(
    n: int, seq: int, vocab: int, n_items: int, n_cand: int, seed: int, items: str = "text"
) -> SplitData:
    """``n`` full-length prompts of ``seq`` random word ids, candidates and ratings (some NaN);
    ``ids``: item slots after a 16-token instruction, ``hybrid``: every fourth token a slot."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, seq), generator=g).tolist()
    if items != "text":
        slots = torch.randint(0, n_items, (n, seq), generator=g).tolist()
        first = min(16, seq - 1) if items == "ids" else 0
        ids = [
            [-(s + 1) if (t >= first if items == "ids" else t % 4 == 3) else w
             for t, (w, s) in enumerate(zip(row, srow, strict=True))]
            for row, srow in zip(ids, slots, strict=True)
        ]  # fmt: skip
    cand = torch.rand(n, n_items, generator=g).argsort(dim=1)[:, :n_cand]
    rating = torch.randint(1, 6, (n,), generator=g).float()
    rating[::4] = float("nan")
    titles = (torch.rand(n, seq, generator=g) < 0.6).tolist()
    return SplitData("train", [f"u{i}" for i in range(n)], ids, cand, rating, 0, titles)


def halving(run: Any, batch: int, model: RecModel) -> tuple[int, list[int], Any]:
    """``run(batch)``, halving ``batch`` after each out-of-memory error: (batch, failed, result)."""
    failed: list[int] = []
    attn = model.lm.config._attn_implementation
    while True:
        try:
            return batch, failed, run(batch)
        except OOM:
            if batch == 1:
                raise
            failed.append(batch)
        # out of the except block: the traceback (and the tensors its frames hold) is gone
        model.zero_grad(set_to_none=True)
        if model.lm.config._attn_implementation != attn:  # the teacher pass switched to eager
            model.lm.set_attn_implementation(attn)
        batch //= 2
        reset_peak(next(model.parameters()).device)


def lm_as(model: RecModel, dtype: torch.dtype) -> RecModel:
    """``model`` with its backbone cast to ``dtype`` in place (heads and features stay fp32)."""
    model.lm.to(dtype)
    return model


def teacher_pass(model: RecModel, data: SplitData, s: Shape, cfg: dict, peak: float) -> dict:
    """The analysis pass of ``teacher_cache`` on ``data``: throughput, MFU, peak memory."""
    t, dev = cfg["teacher"], next(model.parameters()).device
    w, seq = t["finetune"]["w_rating"], prompt_tokens(cfg)

    def warm(b: int) -> dict:
        return calibration_pass(model, data.subset(range(b)), b, w)

    batch, failed, _ = halving(warm, t["batch_size"], model)
    reset_peak(dev)
    sync(dev)
    t0 = time.perf_counter()
    calibration_pass(model, data, batch, w)
    sync(dev)
    sec = time.perf_counter() - t0
    tokens = len(data) * seq
    gram = s.layers * sum(2 * min(seq * (a + c), a * c) for a, c in s.linears())
    flops = tokens * (s.flops(seq, "train") + gram)
    job = _plan(cfg, s, model, len(data), "teacher_cache")
    return {"samples": len(data), "batch_size": batch, "oom_batch_sizes": failed,
            "tokens": tokens, "seconds": sec, "tokens_per_s": tokens / sec,
            "tflops_per_s": flops / sec / 1e12, "mfu": flops / sec / peak,
            "peak_memory_gb": peak_gb(dev),
            "plan_memory_gb": (job.gpu_fixed + job.gpu_per_sample * batch) / 1e9}  # fmt: skip


def lora_step(model: RecModel, data: SplitData, s: Shape, cfg: dict, peak: float) -> dict:
    """One LoRA (``lora_targets``) + heads AdamW step after a warm-up step, on ``model``'s
    dtype, with the fine-tuning objective (``teacher.finetune.loss``)."""
    from peft import LoraConfig, get_peft_model

    ft, dev = cfg["teacher"]["finetune"], next(model.parameters()).device
    seq, base_dtype = prompt_tokens(cfg), str(model.lm.dtype)
    targets = list(ft["lora_targets"])
    peft_lm = get_peft_model(
        model.lm, LoraConfig(r=ft["lora_r"], lora_alpha=ft["lora_alpha"], target_modules=targets)
    )
    model.lm = peft_lm
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=ft["lr"], weight_decay=ft["weight_decay"])

    def step(b: int) -> float:
        opt.zero_grad(set_to_none=True)
        tb, cand, rating = data.batch(range(b))
        loss = task_loss(model(tb, cand), rating, ft["w_rating"], objective=ft["loss"])
        loss.backward()
        opt.step()
        return float(loss.detach())

    try:
        batch, failed, _ = halving(step, ft["batch_size"], model)
        reset_peak(dev)
        sync(dev)
        t0 = time.perf_counter()
        loss = step(batch)
        sync(dev)
        sec = time.perf_counter() - t0
        mem = peak_gb(dev)
    finally:
        opt.zero_grad(set_to_none=True)
        opt.state.clear()
        model.lm = peft_lm.unload()  # the adapters off, the base weights untouched
        model.eval()
    tokens = batch * seq
    flops = tokens * s.flops(seq, "lora")
    job = _plan(cfg, s, model, len(data), "finetune_teacher")
    out = {"base_dtype": base_dtype, "batch_size": batch, "oom_batch_sizes": failed,
           "tokens": tokens, "seconds": sec, "tokens_per_s": tokens / sec,
           "tflops_per_s": flops / sec / 1e12, "mfu": flops / sec / peak,
           "peak_memory_gb": mem, "trainable_params": sum(p.numel() for p in params),
           "loss": loss}  # fmt: skip
    if base_dtype == "torch.float32":  # the plan's fine-tuning estimate is for an fp32 base
        out["plan_memory_gb"] = (job.gpu_fixed + job.gpu_per_sample * batch) / 1e9
    return out


def speed(model: RecModel, data: SplitData, cfg: dict) -> dict:
    """Latency at batch 1 and throughput of the teacher, then of a keep student (in place)."""
    dev, bs, k = next(model.parameters()).device, cfg["eval"]["batch_size"], cfg["selection"]["k"]
    k = min(k if isinstance(k, int) else k[0], model.n_layers)
    reset_peak(dev)
    teacher = {**_speed(model, data, bs), "params": sum(p.numel() for p in model.parameters())}
    teacher["peak_memory_gb"], n = peak_gb(dev), model.n_layers
    layers = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
    keep_layers(model.lm, layers)
    reset_peak(dev)
    student = {**_speed(model, data, bs), "params": sum(p.numel() for p in model.parameters())}
    student["peak_memory_gb"] = peak_gb(dev)
    ratio = teacher["latency_ms_b1"] / student["latency_ms_b1"]
    return {
        "batch_size": bs,
        "layers": layers,
        "teacher": teacher,
        "student": student,
        "latency_speedup": ratio,
        "throughput_speedup": student["throughput_users_s"] / teacher["throughput_users_s"],
    }


def _plan(cfg: dict, s: Shape, model: RecModel, n: int, rule: str) -> Any:
    """The plan's job of ``rule`` for ``n`` samples of every split and ``model``'s items."""
    items = model.heads.dims["n_items"]
    counts = {"users": n, "items": items, "train": n, "valid": n, "test": n, "calibration": n}
    return next(j for j in plan_jobs(cfg, counts, s) if j.rule == rule)


def describe(a: argparse.Namespace, cfg: dict, dev: torch.device, dtype: torch.dtype, s: Shape,
             n: int, items: int) -> tuple[dict[str, Any], float, float]:  # fmt: skip
    """Versions, device and settings for the JSON; the bf16 and fp32 peaks (FLOP/s) used for
    model FLOP utilisation: the card's dense peak when it is known, else a measured matmul."""
    import peft
    import transformers

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    card = next((g for g in GPUS if g in name.lower()), None)
    measured = matmul_tflops(dev, dtype, 8192 if dev.type == "cuda" else 256) * 1e12
    known = card is not None and dtype == torch.bfloat16
    peak, fp32 = (GPUS[card]["bf16"], GPUS[card]["fp32"]) if known else (measured, measured)
    t = cfg["teacher"]
    memory = torch.cuda.get_device_properties(dev).total_memory / 1e9 if dev.type == "cuda" else 0
    info = {
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__,
                     "cuda": torch.version.cuda},
        "device": {"type": dev.type, "name": name, "card": card, "memory_gb": memory,
                   "peak_tflops": peak / 1e12, "fp32_peak_tflops": fp32 / 1e12,
                   "peak_source": f"{card} dense spec" if known else "measured matmul",
                   "measured_matmul_tflops": measured / 1e12},
        "settings": {"tiny": a.tiny, "shape": s.__dict__, "params": s.params, "dtype": str(dtype),
                     "samples": n, "items": items, "max_prompt_tokens": t["max_prompt_tokens"],
                     "teacher_items": t["items"], "prompt_tokens": prompt_tokens(cfg),
                     "lora_targets": t["finetune"]["lora_targets"], "loss": t["finetune"]["loss"],
                     "teacher_batch_size": t["batch_size"], "head_dim": t["head_dim"],
                     "n_train_candidates": cfg["data"]["n_train_candidates"],
                     "lora": {k: t["finetune"][k] for k in ("lora_r", "lora_alpha", "batch_size")},
                     "eval_batch_size": cfg["eval"]["batch_size"], "k": cfg["selection"]["k"],
                     "configfile": a.configfile, "budget_s": a.budget_s},
    }  # fmt: skip
    return info, peak, fp32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--configfile", nargs="+", default=[str(ROOT / "config" / "llama3_8b.yaml")])
    ap.add_argument("--samples", type=int, default=256, help="teacher-pass samples")
    ap.add_argument("--items", type=int, default=25600, help="items of the catalogue")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip sections after this")
    ap.add_argument("--tiny", action="store_true", help="tiny 4-layer model on CPU, fp32")
    a = ap.parse_args()
    start = time.perf_counter()
    cfg = load_config(ROOT / "config" / "config.yaml", *a.configfile,
                      overrides=TINY_SETTINGS if a.tiny else None)  # fmt: skip
    if a.tiny:
        dev, dtype, s, n, items = torch.device("cpu"), torch.float32, TINY_SHAPE, 6, 50
    elif torch.cuda.is_available():
        dev, dtype, s = torch.device("cuda"), torch.bfloat16, KNOWN_SHAPES[TEACHER]
        n, items = a.samples, a.items
    else:
        sys.exit("gpu_check: no CUDA device is visible (run with --tiny for the CPU check)")
    result, peak, fp32 = describe(a, cfg, dev, dtype, s, n, items)
    t0, t = time.perf_counter(), cfg["teacher"]
    dim = t["head_dim"] if t["items"] == "text" else cfg["sasrec"]["hidden"]
    model = build(s, dev, dtype, items, dim, t["items"])
    sync(dev)
    result["build_s"] = time.perf_counter() - t0
    result["attn_implementation"] = model.lm.config._attn_implementation
    n_cand = cfg["data"]["n_train_candidates"] + 1
    data = synthetic(n, prompt_tokens(cfg), s.vocab, items, n_cand, seed=0, items=t["items"])
    sections = [
        ("teacher_pass", lambda: teacher_pass(model, data, s, cfg, peak)),
        ("lora_step", lambda: lora_step(model, data, s, cfg, peak)),
        ("lora_step_fp32", lambda: lora_step(lm_as(model, torch.float32), data, s, cfg, fp32)),
        ("speed", lambda: speed(lm_as(model, dtype), data, cfg)),
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for key, run in sections:
        t0 = time.perf_counter()
        if t0 - start > a.budget_s:
            result[key] = {"skipped": f"the time budget of {a.budget_s:.0f} s is spent"}
        else:
            try:
                result[key] = {**run(), "wall_s": time.perf_counter() - t0}
            except Exception as err:  # record it and go on: the other sections still measure
                result[key] = {"error": repr(err), "wall_s": time.perf_counter() - t0}
            reset_peak(dev)
        print(f"{key}: {json.dumps(result[key])}", flush=True)
        result["wall_s"] = time.perf_counter() - start
        a.out.write_text(json.dumps(result, indent=2))  # after every section: partial results
    print(f"wrote {a.out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
