"""Per-layer importance scores from the merged teacher cache, and the selection stage.

Each method's raw score follows DESIGN.md; normalised scores are non-negative and sum to 1;
the concentration ratio is the mean normalised score of the top quarter of layers over the
bottom quarter.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from layerkd.io import read_json, write_json
from layerkd.selection import (
    concentration_ratio,
    layerset_id,
    normalise_scores,
    select_layers,
)

CACHE_METHODS = ("fisher", "gradient", "taylor", "block_influence", "angular", "attention")


def load_stats(path: Path) -> dict[str, np.ndarray]:
    """The calibration statistics written by ``merge_cache`` (``teacher/cache_stats.npz``)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def raw_scores(stats: dict[str, np.ndarray], method: str) -> np.ndarray:
    """The raw per-layer score of ``method`` from the calibration statistics."""
    if method not in CACHE_METHODS:
        raise ValueError(f"method {method!r} is not computed from the teacher cache")
    mean = stats[f"sum_{method}"] / float(stats["n"])
    return np.abs(mean) if method == "taylor" else mean


def hybrid_scores(normalised: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of normalised component scores (weights renormalised over those given)."""
    used = {m: w for m, w in weights.items() if w > 0}
    missing = [m for m in used if m not in normalised]
    if missing:
        raise ValueError(f"hybrid needs the scores of {missing}")
    total = sum(used.values())
    return sum(w / total * normalised[m] for m, w in used.items())


def block_distances(last_states: Any) -> np.ndarray:
    """Mean angular distance (arccos cos / π) at the last token between every pair of hidden
    states ``h_i``, ``h_j`` (``h_0`` = input of layer 0 ... ``h_L`` = output of the last layer):
    an (L+1, L+1) matrix for the ``block`` strategy."""
    import torch

    x = torch.nn.functional.normalize(last_states.double(), dim=-1)  # (n, L+1, H)
    cos = torch.einsum("nih,njh->nij", x, x).clamp(-1, 1)
    return (torch.arccos(cos) / math.pi).mean(0).numpy()


def upper_lower_ratio(normalised: np.ndarray) -> float:
    """Mean normalised score of the upper quarter of layers *by depth* over the lower quarter
    (the original design's claim: 3.8-8.5 on a 32-layer teacher); ``inf`` if the lower is 0."""
    q = max(1, len(normalised) // 4)
    low, high = float(np.mean(normalised[:q])), float(np.mean(normalised[-q:]))
    return float("inf") if low == 0 else high / low


def score_record(method: str, raw: np.ndarray, n_samples: int) -> dict[str, Any]:
    """The JSON record of one method's scores: ``concentration_ratio`` compares the quarter of
    layers with the highest scores to the quarter with the lowest (wherever they sit);
    ``upper_lower_ratio`` compares the top quarter of the stack to the bottom quarter."""
    norm = normalise_scores(raw, method=method)
    return {
        "method": method,
        "n_layers": len(raw),
        "n_samples": n_samples,
        "raw": raw.tolist(),
        "normalised": norm.tolist(),
        "concentration_ratio": concentration_ratio(norm),
        "upper_lower_ratio": upper_lower_ratio(norm),
    }


def score_stage(
    stats_path: Path, method: str, out_path: Path, *, hybrid_weights: dict[str, float]
) -> dict[str, Any]:
    """Write ``scores/{method}.json`` from the calibration statistics."""
    stats = load_stats(stats_path)
    n = int(stats["n"])
    if method == "hybrid":
        norm = {
            m: normalise_scores(raw_scores(stats, m), method=m)
            for m, w in hybrid_weights.items()
            if w > 0
        }
        raw = hybrid_scores(norm, hybrid_weights)
    else:
        raw = raw_scores(stats, method)
    rec = score_record(method, raw, n)
    write_json(out_path, rec)
    return rec


def select_stage(
    method: str,
    strategy: str,
    out_path: Path,
    *,
    k: int,
    score_path: Path | None,
    stats_path: Path,
    seed: int,
    repeat: int = 0,
) -> dict[str, Any]:
    """Write ``selections/{method}__{strategy}.json`` (kept layers and the layerset id)."""
    stats = load_stats(stats_path)
    n_layers = len(stats["sum_fisher"])
    scores = None
    if score_path is not None:
        rec = read_json(score_path)
        scores = np.asarray(rec["normalised"], dtype=float)  # non-negative: ablation can be < 0
        n_layers = int(rec["n_layers"])
    angular = stats["angular_distance"] if strategy == "block" else None
    layers = select_layers(
        strategy,
        k,
        n_layers,
        scores,
        seed=seed,
        repeat=repeat,
        angular_distance=angular,
        method=method,
    )
    out = {
        "method": method,
        "strategy": strategy,
        "repeat": repeat,
        "k": k,
        "n_layers": n_layers,
        "layers": layers,
        "layerset": layerset_id(layers, n_layers),
    }
    write_json(out_path, out)
    return out


def layersets_stage(selection_paths: list[Path], out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Group selections by layer set: one ``{layerset}.json`` per distinct set, listing every
    (method, strategy) that chose it, so each distinct set is distilled once."""
    groups: dict[str, dict[str, Any]] = {}
    for p in selection_paths:
        sel = read_json(p)
        g = groups.setdefault(sel["layerset"], {"layers": sel["layers"], "selections": []})
        g["selections"].append(
            {"method": sel["method"], "strategy": sel["strategy"], "repeat": sel.get("repeat", 0)}
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, g in sorted(groups.items()):
        write_json(out_dir / f"{name}.json", {"layerset": name, **g})
    return {name: g["selections"] for name, g in groups.items()}
