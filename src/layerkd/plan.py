"""Resource plan of the torch rules: samples, tokens, FLOPs, GPU hours and memory per job.

``python -m layerkd.plan --configfile config/llama3_8b.yaml [--dataset NAME] [--utilisation 0.4]
[--gpu h200] [--users N] [--items N] [--json PATH]`` loads config/config.yaml first (as Snakemake
does), downloads nothing and reads no weights. Estimates are upper bounds of the code as it is;
the printed header states every assumption (:data:`ASSUMPTIONS`)."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

from layerkd.config import ConfigError, distilled_names, k_values, load_config, selections
from layerkd.shapes import KNOWN_SHAPES, Shape, model_shape

__all__ = ["KNOWN_SHAPES", "Shape", "model_shape", "plan_jobs", "sample_counts", "main"]

#: dense peak FLOP/s per compute dtype (fp32: no tensor cores, torch's default of no TF32), GB
GPUS = {
    "h200": {"bf16": 989e12, "fp32": 67e12, "mem_gb": 141},
    "h100": {"bf16": 989e12, "fp32": 67e12, "mem_gb": 80},
    "a100": {"bf16": 312e12, "fp32": 19.5e12, "mem_gb": 80},
}
BYTES = {"fp32": 4, "bf16": 2}
STARTUP_S = 120.0  # per job: imports, CUDA initialisation, tokenising
#: host bytes per kept prompt token while a split is tokenised at once (untruncated encodings with
#: offsets: ~500 B measured with a word-level tokenizer at 670 -> 384 tokens a prompt), and after
TOKEN_PEAK, TOKEN_STEADY = 600, 50
CELL, RUNTIME = 80, 3e9  # host bytes: an item id in the samples frame; Python, torch and CUDA
ASSUMPTIONS = (
    "FLOPs/token: forward 2N (N: matmul weights; the LM head never runs) + 4Th a layer (QK^T, AV on"
    " the full TxT); backward 2x forward (6N); LoRA 4N: forward + activation grads through the "
    "frozen weights, no weight grads for them; the teacher pass adds per-sample Grams "
    "2min(T(din+dout), din*dout) a linear; ablation: the stack once + (L-1)/2 layers a skip",
    "every prompt fills teacher.max_prompt_tokens (ids mode: 16 instruction tokens + "
    "data.history_len slots if fewer); epochs at their ceiling, validation before and "
    "after each; without stats.json: train = users x data.train_samples_per_user, valid = users, "
    "test = min(users, eval.max_users), calibration = data.n_calibration",
    "compute dtype: teacher.dtype (analysis, evaluation); fine-tuning and distillation: bf16 "
    "autocast on CUDA over fp32 master weights (fp32, no TF32, with autocast off)",
    "GPU memory: weights (loaded dtype) + grads/AdamW of what trains + item features + the saved "
    "activations of a micro-batch, (8+6b)h + 4bi B a token and layer (+ aT(4+b) eager attention;"
    " teacher pass + 16h norm hooks + 2bh kept outputs); no recompute, no KV cache",
    f"host: weights in the load dtype (loaded on the CPU), a teacher.cache_chunk of rows, "
    f"{TOKEN_PEAK} B a prompt token of the largest split (tokenised at once), {TOKEN_STEADY} B of "
    f"the others, {CELL} B a samples.parquet item id, {RUNTIME / 1e9:.0f} GB runtime; "
    f"{STARTUP_S:.0f} s start-up",
    "I/O at --io-gbps: weights (teacher saved fp32, Hub weights bf16), cache rows, checkpoints "
    "every checkpoint_every steps (16 B a trainable parameter); students: one per distilled "
    "selection (distinct layer sets are known after the layersets checkpoint) x seeds, per mode",
)


def sample_counts(
    config: dict[str, Any], dataset: str, users: int | None, items: int | None, root: Path
) -> dict[str, Any]:
    """Users, items and samples per split of ``dataset``: from its ``stats.json`` when it
    exists, else from ``data.max_users`` (capping ``users``), else from ``users``."""
    stats = root / "data" / "processed" / dataset / "stats.json"
    data, cap = config["data"], config["eval"].get("max_users")
    limit = data.get("max_users")
    if stats.is_file():
        st = json.loads(stats.read_text())
        out = {"users": st["users"], "items": st["items"], **st["samples"], "source": str(stats)}
    else:
        if users is None and limit is None:
            raise ConfigError(
                f"no sample count for dataset {dataset!r}: {stats} does not exist, data.max_users "
                "is null and --users was not given (pass --users N, the users after the k-core)"
            )
        n = min(x for x in (users, limit) if x is not None)
        train = n * int(data["train_samples_per_user"])
        source = ("data.max_users" if n == limit else "--users") + (
            ", items assumed = users (pass --items)" if items is None else "")  # fmt: skip
        out = {"users": n, "items": items or n, "train": train, "valid": n, "test": n,
               "calibration": min(int(data["n_calibration"]), train), "source": source}  # fmt: skip
    out["test"] = min(out["test"], cap or out["test"])  # eval.max_users
    return out


def fit_cost(p: dict[str, Any], n: int, n_valid: int, s: Shape, seq: int, kind: str) -> tuple:
    """(FLOPs, checkpoints) of a ``fit`` run: all epochs, validation before and after each."""
    steps = p["epochs"] * math.ceil(math.ceil(n / p["batch_size"]) / p["grad_accum"])
    flops = p["epochs"] * n * seq * s.flops(seq, kind)
    flops += (p["epochs"] + 1) * n_valid * seq * s.flops(seq)
    return flops, steps // p["checkpoint_every"] if p["checkpoint_every"] else 0


def heads_params(hidden: int, item_dim: int, n_items: int, dim: int) -> int:
    """Parameters of :class:`~layerkd.models.recmodel.RecHeads`."""
    return hidden * dim + item_dim * dim + n_items + 6 * dim * dim + 10 * dim + 6


@dataclass
class Job:
    """The jobs of one rule: per-job work, memory (bytes) and I/O (bytes); how many run."""

    rule: str
    jobs: int
    samples: int
    tokens: int
    flops: float
    flop_model: str
    dtype: str  # the compute dtype whose peak applies ("cpu": no GPU)
    gpu_fixed: float
    gpu_per_sample: float
    batch: int
    host: float
    io: float


#: tokens of the ID mode's fixed instruction around the item slots (a bound: SmolLM2 and Llama-3
#: tokenizers give 9 + 4)
ID_PROMPT_TOKENS = 16
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def prompt_tokens(config: dict[str, Any]) -> int:
    """Tokens a history prompt holds at most: ``teacher.max_prompt_tokens``, and in ``ids``
    mode (one slot an item) the instruction plus ``data.history_len`` slots if that is fewer."""
    t = config["teacher"]
    if t.get("items", "text") == "ids":
        return min(t["max_prompt_tokens"], ID_PROMPT_TOKENS + config["data"]["history_len"])
    return int(t["max_prompt_tokens"])


def plan_jobs(config: dict[str, Any], counts: dict[str, Any], s: Shape) -> list[Job]:
    """Every torch rule of ``config`` for one dataset's ``counts`` and teacher shape ``s``."""
    t, d, data = config["teacher"], config["distill"], config["data"]
    ft, seq, tdt, L, h = t["finetune"], prompt_tokens(config), t["dtype"], s.layers, s.hidden
    b, n_items, n, ti = BYTES[tdt], counts["items"], s.params, t["max_item_tokens"]
    feats = n_items * (h + t["head_dim"]) * 4  # item features and item vectors, fp32
    cells = (counts["train"] + counts["calibration"]) * (data["n_train_candidates"] + 1)
    cells += (counts["valid"] + counts["test"]) * (data["n_candidates"] + 1)
    cells += sum(counts[k] for k in ("train", "valid", "test", "calibration")) * data["history_len"]

    def host(weights: float, *splits: str) -> float:
        tokens = [seq * counts[x] for x in splits]
        tok = TOKEN_STEADY * sum(tokens) + (TOKEN_PEAK - TOKEN_STEADY) * max(tokens)
        return weights + cells * CELL + RUNTIME + tok

    st = config["student"]  # cache rows: scores, user and (when read later) hidden states
    hidden = d["w_hidden"] > 0 or ("compact" in st["modes"] and st["compact"]["init"] == "teacher")
    row = (data["n_train_candidates"] + 1 + t["head_dim"]) * 4 + hidden * L * h * b
    inf = seq * s.transient(b)
    ti *= t.get("items", "text") != "ids"  # the ids mode encodes no item text
    jobs = [Job("prepare_teacher", 1, n_items, n_items * ti, n_items * ti * s.flops(ti),
                "2N", tdt, n * b, ti * s.transient(b), t["batch_size"],
                max(4, b) * n + RUNTIME + n_items * ti * TOKEN_PEAK, 10 * n)]  # fmt: skip
    ntr, nva, heads = counts["train"], counts["valid"], heads_params(h, h, n_items, t["head_dim"])
    flops, ckpts, per, extra, train, label = 0.0, 0, 0.0, 0.0, 0, "none"
    amp = ft["autocast"] == "bf16" or (ft["autocast"] == "auto" and t["device"] == "cuda")
    fdt = "bf16" if amp else "fp32"
    if ft["mode"] == "lora":
        targets = ft.get("lora_targets", LINEARS[:4])
        adapted = [lin for name, lin in zip(LINEARS, s.linears(), strict=True) if name in targets]
        train = heads + L * ft["lora_r"] * sum(a + c for a, c in adapted)
        flops, ckpts = fit_cost(ft, ntr, nva, s, seq, "lora")
        per, label = seq * L * s.saved(BYTES[fdt], seq), "4N LoRA"
    elif ft["mode"] == "top":  # the lower layers run once, their states cached on the CPU
        top, low = replace(s, layers=ft["top_layers"]), replace(s, layers=L - ft["top_layers"])
        train, (flops, ckpts) = heads + top.layers * (s.matmul + 2 * h) + h, fit_cost(
            ft, ntr, nva, top, seq, "train")  # fmt: skip
        flops, extra = flops + (ntr + nva) * seq * low.flops(seq), (ntr + nva) * seq * h * 4
        per, label = seq * top.layers * s.saved(BYTES[fdt], seq), "6N top"
    jobs.append(Job("finetune_teacher", 1, ntr, ntr * seq, flops, label, fdt,
                    4 * n + 12 * train + feats, per, ft["batch_size"],
                    host(4 * n + 4 * train + extra, "train", "valid"),
                    8 * n + ckpts * 16 * train))  # fmt: skip
    sh = t["shards"]
    nc, nt = math.ceil(counts["calibration"] / sh), math.ceil(ntr / sh)
    gram = L * sum(2 * min(seq * (a + c), a * c) for a, c in s.linears())  # per-sample norms
    flops = nc * seq * (s.flops(seq, "train") + gram)
    flops += nt * seq * s.flops(seq)
    grads = (n - (0 if s.tied else s.vocab * h)) * b  # every weight but the unused LM head
    per = seq * (L * (s.saved(b, seq, True) + 16 * h + 2 * h * b) + s.transient(b))
    jobs.append(Job("teacher_cache", sh, nc + nt, (nc + nt) * seq, flops, "6N+Gram | 2N", tdt,
                    n * b + grads + feats, per, t["batch_size"],
                    host(b * n + t.get("cache_chunk", 0) * row, "train", "calibration"),
                    4 * n + nt * row))  # fmt: skip
    na, cap = counts["calibration"], config["ablation"]["max_samples"]
    na, passes = min(na, cap or na), L + L * (L - 1) / 2
    flops = na * seq * passes * replace(s, layers=1).flops(seq)
    jobs.append(Job("ablation", 1, na, na * seq, flops, f"{passes / L:.1f}x 2N", tdt,
                    n * b + feats, seq * L * h * b + inf, t["batch_size"],
                    host(b * n, "calibration"), 4 * n))  # fmt: skip
    for k in sorted(set(k_values(config))):
        for student_mode in config["student"]["modes"]:
            jobs += _student_jobs(config, counts, s, k, student_mode, row, host)
    nte, bs = counts["test"], config["eval"]["batch_size"]
    jobs.append(Job("evaluate_teacher", 1, nte, nte * seq, nte * seq * s.flops(seq),
                    "2N", tdt, n * b + feats, inf + n_items * 4, bs, host(b * n, "test"),
                    4 * n))  # fmt: skip
    return jobs


def _student_jobs(config: dict[str, Any], counts: dict[str, Any], s: Shape, k: int, mode: str,
                  row: float, host: Any) -> list[Job]:  # fmt: skip
    """build_student, distill and evaluate_student of the students of one k and mode."""
    t, d, c = config["teacher"], config["distill"], config["student"]["compact"]
    seq, tdt, h, ntr = prompt_tokens(config), t["dtype"], s.hidden, counts["train"]
    st = replace(s, layers=k)
    if mode == "compact":
        st = Shape(k, c["hidden_size"], c["intermediate_size"], c["num_heads"],
                   c["num_kv_heads"] or c["num_heads"], s.vocab, s.tied)  # fmt: skip
    only, names = c["selections"], set(distilled_names(config))
    chosen = [x for x in selections(config) if x.k == k and x.stem in names]
    if mode == "compact" and only is not None:
        chosen = [x for x in chosen if x.pair in only]
    top = config["selection"]["screen"]["top"] if config["selection"]["distill"] == "screen" else 0
    # the random search's best set is distilled too (a compact one only without a filter)
    searched = int(config["selection"]["random_search"] and (mode == "keep" or only is None))
    count, ns, tag = (len(chosen) + top + searched) * len(d["seeds"]), st.params, f" k={k} {mode}"
    feats = counts["items"] * (h + t["head_dim"]) * 4
    auto = d["train_embeddings"] is None and mode == "compact" and c["init"] == "random"
    embed = bool(d["train_embeddings"]) or auto
    train = k * (st.matmul + 2 * st.hidden) + st.hidden + embed * st.vocab * st.hidden
    train += heads_params(st.hidden, h, counts["items"], t["head_dim"])
    init_states = (mode == "compact" and c["init"] == "teacher") * ntr * k * h * 4
    builds = count // len(d["seeds"]) if mode == "keep" else count  # a keep init serves every seed
    build = Job("build_student" + tag, builds, 0, 0, 0.0, "-", "cpu", 0.0, 0.0, 0,
                4 * s.params + 4 * ns + init_states + RUNTIME, 4 * s.params + 4 * ns)  # fmt: skip
    nv, dt = counts["valid"], "fp32" if d["autocast"] == "off" else "bf16"
    flops, ckpts = fit_cost(d, ntr, min(nv, d["valid_samples"] or nv), st, seq, "train")
    distill = Job("distill" + tag, count, ntr, ntr * seq, flops, "6N", dt,
                  4 * ns + 14 * train + feats, seq * k * st.saved(BYTES[dt], seq),
                  d["batch_size"], host(max(4 * ns, 8 * train), "train", "valid"),
                  8 * ns + d["epochs"] * ntr * row + ckpts * 16 * train)  # fmt: skip
    nte, b = counts["test"], BYTES[tdt]
    evaluate = Job("evaluate_student" + tag, count, nte, nte * seq,
                   nte * seq * st.flops(seq), "2N", tdt, ns * b + feats,
                   seq * st.transient(b) + counts["items"] * 4, config["eval"]["batch_size"],
                   host(b * ns, "test"), 4 * ns)  # fmt: skip
    if mode != "keep":
        return [build, distill, evaluate]
    # the screen: every selection's layer set (an upper bound on the distinct ones) scored on
    # the validation subset at init and after the screen steps, one keep student at a time
    n_sets, nvs = sum(x.k == k for x in selections(config)), min(nv, d["valid_samples"] or nv)
    if config["selection"]["random_search"]:  # as many random sets as the methods proposed
        n_sets += sum(x.k == k and x.method != "none" for x in selections(config))
    steps = config["selection"]["screen"]["steps"]
    work = (1 + (steps > 0)) * nvs * seq * st.flops(seq) + steps * d["batch_size"] * seq * st.flops(
        seq, "train")  # fmt: skip
    screen = Job("screen" + tag, 1, n_sets * nvs, n_sets * nvs * seq, n_sets * work, "2N+6N", dt,
                 4 * s.params + 4 * ns + 14 * train + feats, seq * k * st.saved(BYTES[dt], seq),
                 d["batch_size"], host(4 * s.params + 8 * train, "train", "valid"),
                 4 * s.params)  # fmt: skip
    return [screen, build, distill, evaluate]


def table(jobs: list[Job], gpu: str, utilisation: float, io_gbps: float) -> list[dict[str, Any]]:
    """Rows of hours (compute at ``utilisation``, I/O, start-up), GB, and whether it fits."""
    rows, cap = [], 0.95 * GPUS[gpu]["mem_gb"] * 1e9
    for j in jobs:
        on_gpu = j.dtype != "cpu"
        compute = j.flops / (utilisation * GPUS[gpu][j.dtype]) if on_gpu else 0.0
        io, mem = j.io / (io_gbps * 1e9), j.gpu_fixed + j.gpu_per_sample * j.batch
        fit = "yes" if mem <= cap else f"NO: batch <= {int((cap - j.gpu_fixed) / j.gpu_per_sample)}"
        hours = (compute + io + STARTUP_S) / 3600
        rows.append({"rule": j.rule, "jobs": j.jobs, "samples/job": j.samples,
                     "tokens/job": j.tokens, "PFLOP/job": j.flops / 1e15, "FLOPs": j.flop_model,
                     "peak": j.dtype, "compute_h": compute / 3600, "io_h": io / 3600,
                     "h/job": hours, "GPU_h": hours * j.jobs * on_gpu, "batch": j.batch,
                     "GPU_GB": mem / 1e9, "host_GB": j.host / 1e9,
                     "fits": fit if on_gpu else "CPU job"})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Print the plan (and write ``--json``); returns what the JSON holds."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="*", default=[], help="overlays of config/config.yaml")
    ap.add_argument("--dataset", help="a datasets[].name (default: the first)")
    ap.add_argument("--utilisation", type=float, default=0.4, help="model FLOP utilisation")
    ap.add_argument("--gpu", choices=sorted(GPUS), default="h200")
    for name in ("users", "items"):
        ap.add_argument(f"--{name}", type=int, help=f"{name} after the k-core (no stats.json)")
    ap.add_argument("--io-gbps", type=float, default=1.0, help="file system GB/s of one job")
    ap.add_argument("--root", type=Path, default=Path("."), help="the project directory")
    ap.add_argument("--json", type=Path, help="also write the plan as JSON to this file")
    a = ap.parse_args(argv)
    if not 0 < a.utilisation <= 1:
        raise ConfigError(f"--utilisation={a.utilisation} must be in (0, 1]")
    paths = [a.root / "config" / "config.yaml", *a.configfile]
    config = load_config(*paths)
    names = [x["name"] for x in config["datasets"]]
    if (dataset := a.dataset or names[0]) not in names:
        raise ConfigError(f"--dataset {dataset!r} is not among datasets[].name {names}")
    counts = sample_counts(config, dataset, a.users, a.items, a.root)
    shape, source, peak = model_shape(config["teacher"]), counts.pop("source"), GPUS[a.gpu]
    rows = table(plan_jobs(config, counts, shape), a.gpu, a.utilisation, a.io_gbps)
    total = sum(r["GPU_h"] for r in rows)
    header = [
        f"layerkd plan: {' + '.join(map(str, paths))}, dataset {dataset}",
        f"teacher {config['teacher']['model']}: {shape}, {shape.params / 1e9:.3g}B parameters",
        f"samples ({source}): {counts}",
        f"GPU {a.gpu} ({peak['mem_gb']} GB): {a.utilisation:.0%} of the dense peak (bf16 "
        f"{peak['bf16'] / 1e12:g}, fp32 {peak['fp32'] / 1e12:g} TFLOP/s); I/O {a.io_gbps:g} GB/s",
        *(f"- {x}" for x in ASSUMPTIONS),
    ]
    body = tabulate(rows, headers="keys", floatfmt=".3g", intfmt=",")
    print("\n".join([*header, "", body, "", f"total GPU hours of all GPU jobs: {total:.4g}"]))
    settings = {k: getattr(a, k) for k in ("gpu", "utilisation", "io_gbps")}
    out = {"header": header, "counts": counts, "shape": asdict(shape), "rows": rows,
           "total_gpu_h": total, **settings}  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
