"""Student stages: build a layer-selected student from the teacher, then distil it offline.

A student is identified by ``{layerset}__{mode}__s{seed}`` (see :func:`student_ids`): one per
distinct layer set, student mode and distillation seed, however many selections chose the
layer set.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from layerkd.io import atomic_dir, read_json
from layerkd.models.backbone import embedding_params, keep_layers
from layerkd.models.recmodel import load_features, load_recmodel, save_recmodel
from layerkd.selection.names import StudentName
from layerkd.student.compact import CompactSpec, build_compact, save_alignment
from layerkd.student.vocab import trim_vocab as trim_vocab_of
from layerkd.student.vocab import used_token_ids
from layerkd.teacher.store import TeacherCache

MODES = ("keep", "compact")


def student_id(layerset: str, mode: str, seed: int) -> str:
    """The name of one student: ``{layerset}__{mode}__s{seed}`` (:class:`StudentName`)."""
    return StudentName(layerset, mode, int(seed)).stem


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


def kept_states(cache: TeacherCache, layers: list[int], block: int = 1024) -> torch.Tensor:
    """The teacher's last-token states at ``layers`` on every training sample (N, k, H) in
    fp32, read ``block`` samples at a time (never the whole cache)."""
    parts = [
        cache.rows("hidden", range(s, min(s + block, len(cache))))[:, layers].float()
        for s in range(0, len(cache), block)
    ]
    return torch.cat(parts)


def n_params(model: torch.nn.Module) -> int:
    """Parameter count (tied weights counted once)."""
    return int(sum(p.numel() for p in model.parameters()))


def build_student(
    *,
    teacher: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    layerset: Path,
    cache: Path,
    init: Path,
    mode: str,
    seed: int,
    compact: dict[str, Any],
    trim_vocab: bool = True,
) -> dict[str, Any]:
    """Build the student of one layer set and save it (HF directory + heads + metadata).

    ``keep``: teacher embeddings + the selected layers (weights copied, order kept) + final
    norm + the teacher's heads. ``compact``: see :mod:`layerkd.models.compact`; its alignment
    projections are saved beside it (``align.safetensors``). With ``trim_vocab`` the token
    embeddings shrink to the tokens the dataset's prompts use (:mod:`layerkd.student.vocab`).
    """
    if mode not in MODES:
        raise ValueError(f"student.modes: mode {mode!r} is not supported (supported: {MODES})")
    spec = read_json(layerset)
    items = pd.read_parquet(item_table)
    model, tok, _ = load_recmodel(teacher, load_features(features, items))
    n_layers, layers = model.n_layers, list(spec["layers"])
    info: dict[str, Any] = {
        "kind": "student",
        "mode": mode,
        "layers": layers,
        "layerset": spec["layerset"],
        "selections": spec["selections"],
        "teacher_layers": n_layers,
        "teacher_hidden": int(model.lm.config.hidden_size),
        "teacher_parameters": n_params(model),
        "seed": int(seed),
    }
    align = None
    if mode == "keep":
        keep_layers(model.lm, layers)
        info["init"] = "copy"
    else:
        cs = compact_spec(compact)
        states = None
        if cs.init == "teacher":
            states = kept_states(TeacherCache(cache), layers)
        model, align = build_compact(model, layers, cs, states, seed)
        info["init"], info["compact"] = cs.init, asdict(cs)
    info["vocab"] = {"teacher": int(model.lm.get_input_embeddings().weight.shape[0])}
    if trim_vocab:
        keep = used_token_ids(tok, pd.read_parquet(samples), items, model.items_mode)
        tok = trim_vocab_of(model.lm, tok, keep)
    info["vocab"]["student"] = int(model.lm.get_input_embeddings().weight.shape[0])
    info["parameters"] = n_params(model)
    info["embedding_parameters"] = embedding_params(model.lm)
    with atomic_dir(init) as tmp:
        save_recmodel(model, tok, tmp, info)
        if align is not None:
            save_alignment(align, tmp)
    return info
