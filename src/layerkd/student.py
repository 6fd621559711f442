"""Student stages: build a layer-selected student from the teacher, then distil it offline.

A student is identified by ``{layerset}__{mode}__s{seed}`` (see :func:`student_ids`): one per
distinct layer set, student mode and distillation seed, however many selections chose the
layer set. ``python -m layerkd.student distill ...`` runs a distillation outside Snakemake
(the resume-after-kill test uses it).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from layerkd.checkpoint import file_digest, fingerprint
from layerkd.distill import DistillParams, distill
from layerkd.io import atomic_dir, read_json, write_parquet
from layerkd.models.backbone import keep_layers
from layerkd.models.compact import CompactSpec, build_compact, load_alignment, save_alignment
from layerkd.models.recmodel import HEADS_FILE, META_FILE, load_recmodel, save_recmodel
from layerkd.models.samples import load_split
from layerkd.teacher import load_features

MODES = ("keep", "compact")


def student_id(layerset: str, mode: str, seed: int) -> str:
    """The name of one student: ``{layerset}__{mode}__s{seed}``."""
    return f"{layerset}__{mode}__s{seed}"


def student_ids(
    layerset_dir: Path,
    modes: list[str],
    seeds: list[int],
    compact_selections: list[str] | None = None,
) -> list[str]:
    """Every student of a dataset: each distinct layer set (one ``{layerset}.json`` in
    ``layerset_dir``) × mode × seed. Compact students are built only for layer sets chosen by
    one of ``compact_selections`` (``method__strategy`` names) when that list is given."""
    out = []
    for path in sorted(Path(layerset_dir).glob("*.json")):
        spec = read_json(path)
        chosen = {f"{s['method']}__{s['strategy']}" for s in spec.get("selections", [])}
        for mode in modes:
            if mode == "compact" and compact_selections is not None:
                if not chosen & set(compact_selections):
                    continue
            out += [student_id(spec["layerset"], mode, int(s)) for s in seeds]
    return out


def compact_spec(cfg: dict[str, Any] | None) -> CompactSpec:
    """A :class:`CompactSpec` from ``student.compact`` (unknown keys such as ``selections``
    are ignored)."""
    known = {f.name for f in fields(CompactSpec)}
    return CompactSpec(**{k: v for k, v in (cfg or {}).items() if k in known})


def n_params(model: torch.nn.Module) -> int:
    """Parameter count (tied weights counted once)."""
    return int(sum(p.numel() for p in model.parameters()))


def build_student(
    teacher_dir: Path,
    features_path: Path,
    items_path: Path,
    layerset_path: Path,
    out_dir: Path,
    *,
    mode: str,
    seed: int = 0,
    compact: dict[str, Any] | None = None,
    cache_path: Path | None = None,
) -> dict[str, Any]:
    """Build the student of one layer set and save it (HF directory + heads + metadata).

    ``keep``: teacher embeddings + the selected layers (weights copied, order kept) + final
    norm + the teacher's heads. ``compact``: see :mod:`layerkd.models.compact`; its alignment
    projections are saved beside it (``align.safetensors``).
    """
    if mode not in MODES:
        raise ValueError(f"student.modes: mode {mode!r} is not supported (supported: {MODES})")
    spec = read_json(layerset_path)
    items = pd.read_parquet(items_path)
    teacher, tok, _ = load_recmodel(teacher_dir, load_features(features_path, items))
    n_layers, layers = teacher.n_layers, list(spec["layers"])
    info: dict[str, Any] = {
        "kind": "student",
        "mode": mode,
        "layers": layers,
        "layerset": spec["layerset"],
        "selections": spec["selections"],
        "teacher_layers": n_layers,
        "teacher_hidden": int(teacher.lm.config.hidden_size),
        "teacher_parameters": n_params(teacher),
        "seed": int(seed),
    }
    align = None
    if mode == "keep":
        keep_layers(teacher.lm, layers)
        model, info["init"] = teacher, "copy"
    else:
        cs = compact_spec(compact)
        states = None
        if cs.init == "teacher":
            if cache_path is None:
                raise ValueError("a compact student with init 'teacher' needs the teacher cache")
            states = torch.load(cache_path, weights_only=False)["train"]["hidden"][:, layers]
        model, align = build_compact(teacher, layers, cs, states, seed)
        info["init"], info["compact"] = cs.init, asdict(cs)
    info["parameters"] = n_params(model)
    with atomic_dir(out_dir) as tmp:
        save_recmodel(model, tok, tmp, info)
        if align is not None:
            save_alignment(align, tmp)
    return info


def distill_student(
    init_dir: Path,
    features_path: Path,
    items_path: Path,
    samples_path: Path,
    cache_path: Path,
    out_dir: Path,
    log_path: Path,
    *,
    max_prompt_tokens: int,
    distill_cfg: dict[str, Any],
    seed: int | None = None,
    device: str = "cpu",
    ckpt_dir: Path | None = None,
) -> pd.DataFrame:
    """Distil the student in ``init_dir`` from the cached teacher outputs; save the best.

    ``seed`` overrides ``distill_cfg['seed']``; ``ckpt_dir`` enables checkpoints (every
    ``checkpoint_every`` steps) and resuming; the teacher itself is never loaded.
    """
    cfg = {k: v for k, v in distill_cfg.items() if k != "seeds"}
    if seed is not None:
        cfg["seed"] = int(seed)
    items, samples = pd.read_parquet(items_path), pd.read_parquet(samples_path)
    model, tok, meta = load_recmodel(init_dir, load_features(features_path, items))
    if cfg.get("train_embeddings") is None:  # auto: train them only in random students
        cfg["train_embeddings"] = meta.get("init") == "random"
    params = DistillParams(**cfg)
    align = load_alignment(init_dir, int(meta.get("teacher_hidden", model.lm.config.hidden_size)))
    cache = torch.load(cache_path, weights_only=False)
    train = load_split(samples, items, tok, "train", max_prompt_tokens)
    valid = load_split(samples, items, tok, "valid", max_prompt_tokens)
    fp = fingerprint(
        file_digest(init_dir / HEADS_FILE, init_dir / META_FILE, init_dir / "config.json"),
        file_digest(cache_path, samples_path),
        max_prompt_tokens,
    )
    model, train_log = distill(
        model,
        meta["layers"],
        cache["train"],
        train,
        valid,
        params,
        align=align,
        ckpt_dir=ckpt_dir,
        fingerprint=fp,
        device=device,
    )
    with atomic_dir(out_dir) as tmp:
        save_recmodel(model, tok, tmp, {**meta, "seed": params.seed, "distill": asdict(params)})
        if align is not None:
            save_alignment(align, tmp)
    write_parquet(log_path, train_log)
    return train_log


def main(argv: list[str] | None = None) -> None:
    """``python -m layerkd.student distill``: one distillation run from the command line."""
    ap = argparse.ArgumentParser(prog="python -m layerkd.student")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("distill", help="distil one student offline from the teacher cache")
    for name in ("init", "features", "items", "samples", "cache", "out", "log"):
        d.add_argument(f"--{name}", type=Path, required=True)
    d.add_argument("--max-prompt-tokens", type=int, required=True)
    d.add_argument("--params", default="{}", help="distill settings as JSON")
    d.add_argument("--seed", type=int, default=None)
    d.add_argument("--checkpoints", type=Path, default=None, help="checkpoint directory")
    d.add_argument("--device", default="cpu")
    d.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from layerkd.runtime import setup

    setup(None, args.threads)
    distill_student(
        args.init,
        args.features,
        args.items,
        args.samples,
        args.cache,
        args.out,
        args.log,
        max_prompt_tokens=args.max_prompt_tokens,
        distill_cfg=json.loads(args.params),
        seed=args.seed,
        device=args.device,
        ckpt_dir=args.checkpoints,
    )


if __name__ == "__main__":
    main()
