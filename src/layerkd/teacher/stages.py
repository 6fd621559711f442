"""Teacher stages: prepare the backbone and item features, fine-tune, run the analysis pass.

Every stage is keyword-only, its parameter names those of its rule's input, output and params.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerkd.evaluation.full import seen_items
from layerkd.io import atomic_dir, atomic_path, save_torch, write_json, write_parquet
from layerkd.models.backbone import load_causal_lm, prepare_backbone
from layerkd.models.checkpoint import file_digest, fingerprint
from layerkd.models.items import (
    encode_items,
    load_item_inputs,
    load_item_table,
    uses_table,
    uses_text,
)
from layerkd.models.recmodel import (
    RecHeads,
    RecModel,
    load_for_scoring,
    save_recmodel,
)
from layerkd.models.samples import half_rows, load_split
from layerkd.runtime import device_of
from layerkd.teacher.cache import (
    block_distances,
    calibration_pass,
    iter_train_outputs,
    merge_calibration,
    shard_indices,
)
from layerkd.teacher.finetune import FinetuneParams, finetune
from layerkd.teacher.negatives import MODES as NEGATIVE_MODES
from layerkd.teacher.negatives import EpochNegatives
from layerkd.teacher.store import ChunkWriter, load_calibration, save_calibration, write_index

log = logging.getLogger(__name__)


def prepare_teacher(
    *,
    item_table: Path,
    backbone: Path,
    features: Path,
    model: str,
    items_mode: str = "text",
    sasrec_table: Path | None = None,
    tiny: dict[str, Any],
    max_item_tokens: int,
    batch_size: int,
    seed: int,
    device: str,
    dtype: str,
    device_map: str | None,
) -> dict[str, Any]:
    """Save the base ``model`` as an HF directory ``backbone`` and write the item inputs of
    ``teacher.items`` mode ``items_mode`` into ``features``: every item text encoded once
    (``text``, ``hybrid``) and the SASRec item table read from ``sasrec_table`` (``ids``,
    ``hybrid``), checked against ``items.parquet``."""
    from transformers import AutoTokenizer

    items = pd.read_parquet(item_table)
    blob: dict[str, Any] = {"item_ids": items["item_id"].tolist()}
    if uses_table(items_mode):  # a file without a mode is text, as files always were
        if sasrec_table is None:
            raise ValueError(f"teacher.items={items_mode!r} needs the SASRec item table")
        blob |= {"items": items_mode, "table": load_item_table(sasrec_table, items)}
    with atomic_dir(backbone) as tmp:
        info = prepare_backbone(model, tmp, tiny=tiny, texts=items["text"].tolist(), seed=seed)
        lm = load_causal_lm(tmp, device=device_of(device), dtype=dtype, device_map=device_map)
        tok = AutoTokenizer.from_pretrained(str(tmp))
        if uses_text(items_mode):
            feats = encode_items(
                lm, tok, items["text"].astype(str).tolist(), max_item_tokens, batch_size
            )
        else:
            feats = torch.zeros(len(items), 0)
        write_json(tmp / "backbone.json", info)
    save_torch(features, {**blob, "features": feats})
    return info


def finetune_teacher(
    *,
    backbone: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    teacher: Path,
    train_log: Path,
    head_dim: int,
    max_prompt_tokens: int,
    seed: int,
    finetune_cfg: dict[str, Any],
    item_table_mode: str = "frozen",
    interactions: Path | None = None,
    primary: str = "sampled",
    checkpoints: Path | None,
    device: str,
    dtype: str,
    device_map: str | None,
) -> pd.DataFrame:
    """Fine-tune the base ``backbone`` with fresh heads on the task; save the merged model as
    ``teacher`` and the log as ``train_log``. ``checkpoints`` (a directory, or None) makes the
    run resumable after a kill. The ``teacher.items`` mode is the one ``features`` was prepared
    for; in the ID modes the head size is the item table's width (``head_dim`` is unused) and
    ``item_table_mode`` says whether the table trains. Early stopping reads the ``primary``
    protocol of ``eval``: with ``full``, validation NDCG@5 ranks each target against every item
    but the user's own (read from ``interactions``).

    Training keeps fp32 master weights on ``device`` (``dtype`` and ``device_map`` only set how
    later steps load the teacher).
    """
    from transformers import AutoTokenizer

    del dtype, device_map  # training is fp32 on one device; later steps load in dtype
    # early stopping reads the select half of the validation users (the judge half is the
    # report's)
    items, frame = pd.read_parquet(item_table), half_rows(pd.read_parquet(samples), "select")
    feats, mode, table = load_item_inputs(features, items)
    lm = load_causal_lm(backbone, device=device_of(device))
    tok = AutoTokenizer.from_pretrained(str(backbone))
    torch.manual_seed(seed)
    dim = head_dim if table is None else int(table.shape[1])
    heads = RecHeads(
        lm.config.hidden_size, feats.shape[1], len(items), dim,
        items=mode, table=table, item_table=item_table_mode,
    )  # fmt: skip
    model = RecModel(lm, heads.to(device), feats.to(device))
    train = load_split(frame, items, tok, "train", max_prompt_tokens, mode)
    valid = load_split(frame, items, tok, "valid", max_prompt_tokens, mode)
    params = FinetuneParams(**{**finetune_cfg, "seed": seed})
    full = None
    if primary == "full":
        if interactions is None:
            raise ValueError("eval.primary is full: finetune_teacher needs interactions.parquet")
        valid_rows = frame[frame["split"] == "valid"]
        full = seen_items(valid_rows, pd.read_parquet(interactions), items)
    elif primary != "sampled":
        raise ValueError(f"eval.primary={primary!r}: expected sampled or full")
    fp = fingerprint(
        file_digest(backbone / "config.json", backbone / "backbone.json", features, samples),
        head_dim,
        max_prompt_tokens,
        primary,
        item_table_mode,
    )
    ckpt_dir = Path(checkpoints) if checkpoints else None
    negatives = None
    if params.loss == "sampled" and params.negatives == "epoch":
        if interactions is None:
            raise ValueError("teacher.finetune.negatives is epoch: it needs interactions.parquet")
        negatives = EpochNegatives(train, pd.read_parquet(interactions), items, seed)
    elif params.negatives not in NEGATIVE_MODES:
        raise ValueError(
            f"teacher.finetune.negatives={params.negatives!r}: expected epoch or fixed"
        )
    model, log_frame = finetune(
        model, train, valid, params, ckpt_dir=ckpt_dir, fingerprint=fp, full=full,
        negatives=negatives,
    )  # fmt: skip
    n_layers = model.n_layers
    prompts = {s.split: s.prompt_stats() for s in (train, valid)}
    log.info("prompts (teacher.max_prompt_tokens=%d): %s", max_prompt_tokens, prompts)
    meta = {"kind": "teacher", "layers": list(range(n_layers)), "teacher_layers": n_layers}
    meta["prompts"] = prompts  # how much of the histories the prompts show
    with atomic_dir(teacher) as tmp:
        save_recmodel(model, tok, tmp, meta)
    write_parquet(train_log, log_frame)
    return log_frame


def cache_shard(
    *,
    teacher: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    shard: Path,
    index: int,
    n_shards: int,
    batch_size: int,
    max_prompt_tokens: int,
    w_rating: float,
    hidden: bool,
    chunk: int,
    device: str,
    dtype: str,
    device_map: str | None,
) -> None:
    """Shard ``index`` of ``n_shards`` of the teacher pass, written to the directory ``shard``
    (see :mod:`layerkd.teacher.store`): calibration statistics, then the teacher's outputs on
    the training samples in chunks of ``chunk`` samples, with the hidden states of every layer
    only when ``hidden``."""
    model, tok, items, frame, _ = load_for_scoring(
        teacher, features, item_table, samples, device=device, dtype=dtype, device_map=device_map
    )
    calib = load_split(frame, items, tok, "calibration", max_prompt_tokens, model.items_mode)
    train = load_split(frame, items, tok, "train", max_prompt_tokens, model.items_mode)
    c_idx = shard_indices(len(calib), index, n_shards)
    t_idx = shard_indices(len(train), index, n_shards)
    with atomic_dir(shard) as tmp:
        stats = calibration_pass(model, calib.subset(c_idx), batch_size, w_rating)
        stats["index"] = torch.tensor(c_idx, dtype=torch.long)
        save_calibration(tmp, stats)
        writer, done = ChunkWriter(tmp, chunk), 0
        for out in iter_train_outputs(model, train.subset(t_idx), batch_size, hidden=hidden):
            ids = torch.tensor(t_idx[done : done + len(out["scores"])], dtype=torch.long)
            writer.add(index=ids, **out)
            done += len(ids)
        log.info("shard %d: %d training samples in %d chunks", index, done, writer.close())


def merge_cache(*, shards: list[Path], cache: Path, stats: Path, n_shards: int) -> None:
    """Index the ``shards``' chunks in ``cache`` (``teacher/cache.json``: no copy of the data)
    and merge their calibration statistics into ``stats``, which scoring and selection read
    (NumPy only, no torch). Memory stays flat: only the calibration parts are loaded."""
    if len(shards) != n_shards:
        raise ValueError(
            f"merge_cache: {len(shards)} shard directories for teacher.shards={n_shards}"
        )
    calib = merge_calibration([load_calibration(d) for d in shards])
    arrays = {f"sum_{k}": v.double().numpy() for k, v in calib["sums"].items()}
    arrays |= {f"rows_{k}": v.double().numpy() for k, v in calib["rows"].items()}
    with atomic_path(stats, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            n=np.array(calib["n"]),
            angular_distance=block_distances(calib["last_states"]),
            **arrays,
        )
    write_index(shards, cache)
