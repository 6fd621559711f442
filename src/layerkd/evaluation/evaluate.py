"""Evaluation of a saved model (teacher or student) on the test candidates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerkd.evaluation.full import full_ranks, full_record, seen_items
from layerkd.evaluation.metrics import rank_metrics, ranking_metrics, rating_metrics, summarise
from layerkd.evaluation.reference import candidates_digest, eval_record, test_rows
from layerkd.evaluation.stats import bootstrap_ci
from layerkd.io import write_json
from layerkd.models.backbone import embedding_params
from layerkd.models.recmodel import load_for_scoring
from layerkd.models.samples import half_rows, load_split
from layerkd.models.train import score_split


def _sync(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA runs asynchronously: without this a timer
    measures kernel launches, not the work)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _speed(model: Any, data: Any, batch_size: int, n_latency: int = 20) -> dict[str, float]:
    """User-tower latency at batch 1 (ms, median of ``n_latency`` users after a warm-up) and
    throughput at ``batch_size`` (users/s, best of 3) on the same samples for every model."""
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        for i in range(min(3, len(data))):  # warm-up: allocator, kernels
            model(*data.batch([i])[:2])
        lat = []
        for i in range(min(n_latency, len(data))):
            b, cand, _ = data.batch([i])
            _sync(dev)
            t0 = time.perf_counter()
            model(b, cand)
            _sync(dev)
            lat.append(time.perf_counter() - t0)
        idx = list(range(min(batch_size, len(data))))
        b, cand, _ = data.batch(idx)
        best = float("inf")
        for _ in range(3):
            _sync(dev)
            t0 = time.perf_counter()
            model(b, cand)
            _sync(dev)
            best = min(best, time.perf_counter() - t0)
    return {"latency_ms_b1": 1000 * float(np.median(lat)), "throughput_users_s": len(idx) / best}


def rating_detail(
    pred: np.ndarray, true: np.ndarray, user_ids: list[str], *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """Per-user rating errors over the users with a known rating, and bootstrap intervals of
    RMSE, MAE and 5-class accuracy (class = rounded regression prediction)."""
    known = ~np.isnan(true)
    if not known.any():
        return {"rating_per_user": None, "rating_ci": None, "user_ids_rated": []}
    p, t = pred[known], true[known]
    per = {
        "sq_err": (p - t) ** 2,
        "abs_err": np.abs(p - t),
        "correct": (np.clip(np.floor(p + 0.5), 1, 5) == np.clip(np.floor(t + 0.5), 1, 5)) * 1.0,
    }
    ci = {
        "rmse": [
            float(np.sqrt(v)) for v in bootstrap_ci(per["sq_err"], n_boot=bootstrap, seed=seed)[1:]
        ],
        "mae": list(bootstrap_ci(per["abs_err"], n_boot=bootstrap, seed=seed)[1:]),
        "accuracy": list(bootstrap_ci(per["correct"], n_boot=bootstrap, seed=seed)[1:]),
    }
    return {
        "rating_per_user": {k: v.tolist() for k, v in per.items()},
        "rating_ci": ci,
        "user_ids_rated": [u for u, k in zip(user_ids, known, strict=True) if k],
    }


def valid_record(
    net: Any,
    frame: pd.DataFrame,
    items: pd.DataFrame,
    tok: Any,
    max_prompt_tokens: int,
    batch_size: int,
    name: str,
    interactions: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Per-user sampled-ranking metrics on the validation samples of the *judge* half of the
    validation users among the test users of ``frame`` (the report's validation numbers: the
    under-training gate, the screen check, the summary's column; early stopping and the screen
    used the select half). With ``interactions`` also full ranking (``full``), the user's
    earlier items excluded."""
    users = set(frame.loc[frame["split"] == "test", "user_id"])
    rows = half_rows(frame, "judge")
    rows = rows[(rows["split"] != "valid") | rows["user_id"].isin(users)]
    valid = load_split(rows, items, tok, "valid", max_prompt_tokens, net.items_mode)
    vecs: list[torch.Tensor] = []
    scores = score_split(net, valid, batch_size, desc=f"validate {name}", users=vecs)[0]
    per_user = ranking_metrics(scores)
    rec: dict[str, Any] = {
        "model": f"{name} (valid)",
        "split": "valid",
        "half": "judge",
        "protocol": "sampled",
        "user_ids": valid.user_ids,
        "metrics": summarise(per_user),
        "per_user": {k: v.tolist() for k, v in per_user.items()},
    }
    if interactions is not None:
        u = torch.cat(vecs)
        targets, seen = seen_items(rows[rows["split"] == "valid"], interactions, items)
        ranks = full_ranks(lambda r: net.score_all(u[r]).float().cpu().numpy(), targets, seen)
        full = rank_metrics(ranks)
        rec["full"] = {
            "metrics": summarise(full),
            "per_user": {k: v.tolist() for k, v in full.items()},
        }
    return rec


def evaluate_model(
    *,
    model: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    interactions: Path,
    metrics: Path,
    name: str,
    max_prompt_tokens: int,
    evaluation: dict[str, Any],
    device: str,
    dtype: str,
    device_map: str | None,
) -> dict[str, Any]:
    """Score the test split with the saved ``model`` and write ``eval/{name}.json``
    (``metrics``); ``evaluation`` is the ``eval`` section of the config: with ``full`` in its
    ``protocol`` the record also holds the full-catalogue ranking (``full``), the user's
    earlier items (from ``interactions``) excluded."""
    batch_size, bootstrap, seed = (evaluation[k] for k in ("batch_size", "bootstrap", "seed"))
    net, tok, items, frame, meta = load_for_scoring(
        model, features, item_table, samples, device=device, dtype=dtype, device_map=device_map
    )
    frame = test_rows(frame, evaluation["max_users"], seed)
    test = load_split(frame, items, tok, "test", max_prompt_tokens, net.items_mode)
    users: list[torch.Tensor] = []
    scores, pred_rating = score_split(net, test, batch_size, desc=f"evaluate {name}", users=users)
    extra: dict[str, Any] = {
        "layers": meta.get("layers"),
        "layerset": meta.get("layerset"),
        "mode": meta.get("mode"),
        "items": net.items_mode,
        "seed": meta.get("seed"),
        "selections": meta.get("selections"),
        "teacher_layers": meta.get("teacher_layers"),
        "params": int(sum(p.numel() for p in net.parameters())),
        "params_embedding": embedding_params(net.lm),
        "vocab": int(net.lm.get_input_embeddings().weight.shape[0]),
        "rating": rating_metrics(pred_rating, None, test.rating.numpy()),
        **rating_detail(
            pred_rating, test.rating.numpy(), test.user_ids, bootstrap=bootstrap, seed=seed
        ),
        **_speed(net, test, batch_size),
    }
    inter = pd.read_parquet(interactions) if "full" in evaluation["protocol"] else None
    extra["valid"] = valid_record(
        net, frame, items, tok, max_prompt_tokens, batch_size, name, interactions=inter
    )
    if inter is not None:
        u = torch.cat(users)
        tests = frame[frame["split"] == "test"].reset_index(drop=True)
        targets, seen = seen_items(tests, inter, items)
        ranks = full_ranks(lambda rows: net.score_all(u[rows]).float().cpu().numpy(), targets, seen)
        extra["full"] = full_record(ranks, len(items), bootstrap=bootstrap, seed=seed)
    rec = eval_record(
        name,
        meta["kind"],
        scores,
        test.user_ids,
        candidates_digest(frame),
        bootstrap=bootstrap,
        seed=seed,
        extra=extra,
    )
    write_json(metrics, rec)
    return rec
