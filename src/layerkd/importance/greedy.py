"""Greedy layer removal (SLEB-style, Song et al., ICML 2024): starting from all ``L`` layers,
repeatedly remove the layer whose removal (given those already removed) raises the calibration
task loss least, until ``k`` remain.

Removing kept layer ``l`` leaves the kept layers below it untouched, so each round runs the
current model once per batch (recording every kept layer's input) and then, per candidate,
only the kept layers above it from the recorded input, as :mod:`layerkd.importance.ablation`
does for the full model. A round over ``m`` kept layers costs ``m + m (m - 1) / 2`` layer
forwards per sample; the whole search from ``L`` down to ``k`` costs about ``(L^3 - k^3) / 6``.

The score record's ``raw`` score is a layer's rank in the removal order: the ``i``-th layer
removed (``i`` from 0) scores ``i + 1``; the ``k`` survivors score ``L - k + 1 .. L``, ordered
by one more round (the loss with each survivor removed from the final set, lowest first).
``top_k`` on it therefore keeps exactly the greedy set for every ``k' >= k``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from layerkd.importance.ablation import calibration_samples
from layerkd.importance.scores import score_record
from layerkd.io import write_json
from layerkd.models.backbone import LayerOutputs, LayerSubset
from layerkd.models.recmodel import RecModel, task_loss
from layerkd.models.samples import SplitData
from layerkd.models.text import batches
from layerkd.records import ScoreRecord

log = logging.getLogger(__name__)


@dataclass
class Removal:
    """The greedy removal order of :func:`greedy_removal` and what it cost."""

    order: list[int]  # layers in the order removed
    loss_after_removal: list[float]  # mean task loss after each removal
    full_loss: float  # mean task loss of the full model
    kept: list[int]  # the layers left, ascending
    layer_forwards: int = 0  # decoder-layer forwards, summed over samples
    seconds: float = 0.0


@torch.no_grad()
def removal_losses(
    model: RecModel, data: SplitData, kept: list[int], batch_size: int, w_rating: float
) -> tuple[float, np.ndarray, int]:
    """(mean loss with only ``kept`` layers, mean loss with each of ``kept`` removed as well,
    decoder-layer forwards run, summed over samples).

    ``kept`` is ascending; entry ``p`` of the array is the loss without ``kept[p]``.
    """
    model.eval()
    m, n = len(kept), len(data)
    current, without = 0.0, np.zeros(m)
    forwards = 0
    for rng in batches(n, batch_size):
        b, cand, rating = data.batch(rng)
        with LayerSubset(model.lm, kept), LayerOutputs(model.lm) as rec:
            current += float(task_loss(model(b, cand), rating, w_rating, reduction="sum"))
        for p in range(m):
            with LayerSubset(model.lm, kept[p + 1 :]):
                out = model(b, cand, inputs_embeds=rec.inputs[p])
            without[p] += float(task_loss(out, rating, w_rating, reduction="sum"))
        forwards += len(rng) * (m + m * (m - 1) // 2)
    return current / n, without / n, forwards


def subset_loss(
    model: RecModel, data: SplitData, kept: list[int], batch_size: int, w_rating: float
) -> float:
    """Mean task loss running only the layers ``kept`` (a plain forward pass per batch)."""
    total = 0.0
    with torch.no_grad(), LayerSubset(model.lm, kept):
        for rng in batches(len(data), batch_size):
            b, cand, rating = data.batch(rng)
            total += float(task_loss(model(b, cand), rating, w_rating, reduction="sum"))
    return total / len(data)


def greedy_removal(
    model: RecModel, data: SplitData, k: int, batch_size: int, w_rating: float
) -> Removal:
    """Remove layers one at a time, each time the one whose removal raises the loss least
    (ties: the lower layer), until ``k`` remain."""
    n_layers = model.n_layers
    if not 1 <= k < n_layers:
        raise ValueError(f"greedy: k={k} must be in 1..{n_layers - 1} for {n_layers} layers")
    start = time.perf_counter()
    kept, order, losses = list(range(n_layers)), [], []
    full, forwards = float("nan"), 0
    for _ in tqdm(range(n_layers - k), desc="greedy", unit="round"):
        current, without, f = removal_losses(model, data, kept, batch_size, w_rating)
        forwards += f
        if not order:
            full = current
        p = int(np.argmin(without))
        order.append(kept.pop(p))
        losses.append(float(without[p]))
        log.info("greedy: removed layer %d, loss %.5f, %d left", order[-1], losses[-1], len(kept))
    return Removal(order, losses, full, kept, forwards, time.perf_counter() - start)


def removal_rank(n_layers: int, order: list[int], survivors: list[int]) -> np.ndarray:
    """Raw greedy score: the ``i``-th removed layer scores ``i + 1``; ``survivors`` (the layers
    never removed, least important first) continue the count up to ``n_layers``."""
    ranked = [*order, *survivors]
    if sorted(ranked) != list(range(n_layers)):
        raise ValueError(f"removal order {order} + survivors {survivors} is not every layer")
    raw = np.zeros(n_layers)
    raw[ranked] = np.arange(1, n_layers + 1, dtype=float)
    return raw


def greedy_record(
    model: RecModel, data: SplitData, k: int, batch_size: int, w_rating: float
) -> ScoreRecord:
    """The ``greedy`` score record: :func:`greedy_removal` down to ``k`` layers, survivors
    ranked by one more round, plus the order, the losses and the cost."""
    res = greedy_removal(model, data, k, batch_size, w_rating)
    start = time.perf_counter()
    survivors = list(res.kept)
    survivor_loss: list[float] = []
    if len(res.kept) > 1:
        _, without, f = removal_losses(model, data, res.kept, batch_size, w_rating)
        res.layer_forwards += f
        survivors = [res.kept[p] for p in np.argsort(without, kind="stable")]
        survivor_loss = [float(without[res.kept.index(s)]) for s in survivors]
    res.seconds += time.perf_counter() - start
    rec = score_record("greedy", removal_rank(model.n_layers, res.order, survivors), len(data))
    rec.update(
        {
            "k": k,
            "removal_order": res.order,
            "loss_after_removal": res.loss_after_removal,
            "full_loss": res.full_loss,
            "kept": res.kept,
            "survivor_order": survivors,
            "survivor_loss": survivor_loss,
            "layer_forwards": res.layer_forwards,
            "seconds": res.seconds,
        }
    )
    msg = "greedy: %d layer forwards (summed over %d samples) in %.1f s; kept %s"
    log.info(msg, res.layer_forwards, len(data), res.seconds, res.kept)
    print(msg % (res.layer_forwards, len(data), res.seconds, res.kept), flush=True)
    return rec


def greedy_stage(
    *,
    teacher: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    scores: Path,
    max_samples: int | None,
    batch_size: int,
    max_prompt_tokens: int,
    w_rating: float,
    k: int | list[int],
    device: str,
    dtype: str,
    device_map: str | None,
) -> ScoreRecord:
    """Write ``scores/greedy.json`` (``scores``) from the first ``max_samples`` calibration
    samples (``None``: all); ``k`` is the smallest ``selection.k`` (a list: its minimum)."""
    k_min = min(k) if isinstance(k, list) else int(k)
    model, calib = calibration_samples(
        teacher, features, item_table, samples, max_samples, max_prompt_tokens,
        device=device, dtype=dtype, device_map=device_map,
    )  # fmt: skip
    rec = greedy_record(model, calib, k_min, batch_size, w_rating)
    rec["max_samples"] = max_samples
    write_json(scores, rec)
    return rec
