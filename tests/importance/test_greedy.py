"""Greedy layer removal against ablation, an exhaustive search, real layer deletion, and the
top_k selection of its own score record, on tiny random models."""

from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pytest
import torch

from layerkd.importance.ablation import ablation_scores
from layerkd.importance.greedy import (
    greedy_record,
    greedy_removal,
    removal_losses,
    removal_rank,
    subset_loss,
)
from layerkd.models.backbone import build_tiny, keep_layers
from layerkd.models.recmodel import RecHeads, RecModel, task_loss
from layerkd.report.plots import greedy_curve
from layerkd.selection.strategies import select_layers
from tests.tiny import TINY, WORDS, tiny_model, tiny_split

W = 0.3


def model_with(n_layers: int, seed: int, n_items: int = 12) -> RecModel:
    """Like :func:`tests.tiny.tiny_model`, with ``n_layers`` decoder layers."""
    lm, _ = build_tiny({**TINY, "num_layers": n_layers}, [WORDS], seed)
    torch.manual_seed(seed + 1)
    heads = RecHeads(lm.config.hidden_size, 8, n_items, 16)
    with torch.no_grad():
        heads.item_bias.normal_(0, 0.1)
    return RecModel(lm, heads, torch.randn(n_items, 8)).eval()


def loss_deleting(model: RecModel, data, kept: list[int]) -> float:
    """Mean task loss of a deep copy with every layer outside ``kept`` deleted, sample by
    sample (no padding)."""
    pruned = copy.deepcopy(model)
    keep_layers(pruned.lm, kept)
    with torch.no_grad():
        losses = [
            float(task_loss(pruned(*data.batch([i])[:2]), data.rating[[i]], W))
            for i in range(len(data))
        ]
    return sum(losses) / len(losses)


@pytest.mark.parametrize(("seed", "items"), [(0, "text"), (3, "text"), (5, "ids"), (0, "hybrid")])
def test_one_removal_is_the_least_important_ablated_layer(seed, items):
    model, _ = tiny_model(seed=seed, items=items)
    data = tiny_split(n=6, seed=seed, items=items)
    full, deltas = ablation_scores(model, data, batch_size=4, w_rating=W)
    res = greedy_removal(model, data, model.n_layers - 1, batch_size=4, w_rating=W)
    assert res.order == [int(np.argmin(deltas))]
    assert res.full_loss == pytest.approx(full, rel=1e-6)
    assert res.loss_after_removal[0] == pytest.approx(full + deltas.min(), rel=1e-5, abs=1e-6)
    assert sorted(res.kept + res.order) == list(range(model.n_layers))
    # one round over 4 layers: the recording pass (4) + candidates (3 + 2 + 1 + 0) per sample
    assert res.layer_forwards == 6 * (4 + 6)
    assert model.n_layers == 4 and model.lm.config.num_hidden_layers == 4


def test_greedy_never_beats_the_exhaustive_optimum(record_property):
    """k = 3 of 5 layers: greedy's set against every 3-layer set, for a few seeds."""
    n_layers, k, notes = 5, 3, []
    for seed in (0, 1, 2, 23, 24):  # 23 and 24: greedy misses the optimum
        model = model_with(n_layers, seed)
        data = tiny_split(n=6, seed=seed)
        res = greedy_removal(model, data, k, batch_size=4, w_rating=W)
        losses = {
            s: subset_loss(model, data, list(s), 4, W)
            for s in itertools.combinations(range(n_layers), k)
        }
        best = min(losses, key=losses.get)
        greedy_set = tuple(res.kept)
        assert losses[greedy_set] == pytest.approx(res.loss_after_removal[-1], rel=1e-5)
        assert losses[greedy_set] >= losses[best] - 1e-6
        rank = sorted(losses.values()).index(losses[greedy_set]) + 1
        notes.append(
            f"seed {seed}: greedy {list(greedy_set)} loss {losses[greedy_set]:.5f} "
            f"(rank {rank}/{len(losses)}), exhaustive {list(best)} loss {losses[best]:.5f}"
            + ("" if greedy_set == best else "  <- differ")
        )
    print("\n".join(notes))
    record_property("greedy_vs_exhaustive", "; ".join(notes))


@pytest.mark.parametrize("removed", [[], [1], [0, 3], [2, 4, 5]])
def test_recorded_input_losses_equal_deleting_the_layers(removed):
    model = model_with(6, seed=2)
    data = tiny_split(n=7, seed=4)
    kept = [i for i in range(6) if i not in removed]
    current, without, forwards = removal_losses(model, data, kept, batch_size=3, w_rating=W)
    assert current == pytest.approx(loss_deleting(model, data, kept), rel=1e-5, abs=1e-6)
    for p, layer in enumerate(kept):
        expected = loss_deleting(model, data, [i for i in kept if i != layer])
        assert without[p] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    m = len(kept)
    assert forwards == 7 * (m + m * (m - 1) // 2)
    assert model.n_layers == 6 and model.lm.config.num_hidden_layers == 6


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k_of_the_record_is_the_greedy_set_for_every_k(k, tmp_path):
    n_layers = 6
    model = model_with(n_layers, seed=7)
    data = tiny_split(n=5, seed=7)
    rec = greedy_record(model, data, k, batch_size=4, w_rating=W)
    order = rec["removal_order"]
    assert len(order) == n_layers - k and sorted(order + rec["kept"]) == list(range(n_layers))
    assert sorted(rec["survivor_order"]) == rec["kept"]
    assert len(rec["loss_after_removal"]) == n_layers - k
    assert sorted(rec["raw"]) == list(range(1, n_layers + 1))  # no ties
    assert sum(rec["normalised"]) == pytest.approx(1.0)
    assert rec["layer_forwards"] > 0 and rec["seconds"] > 0
    ranked = order + rec["survivor_order"]  # least important first
    for kk in range(1, n_layers):
        expected = sorted(ranked[n_layers - kk :])
        got = select_layers("top_k", kk, n_layers, np.asarray(rec["normalised"]), method="greedy")
        assert got == expected
        if kk >= k:  # the greedy set itself: the layers not among the first L - kk removed
            assert got == sorted(set(range(n_layers)) - set(order[: n_layers - kk]))
    assert greedy_curve(json.loads(json.dumps(rec)), tmp_path / "greedy.png").stat().st_size > 0


def test_removal_rank_rejects_an_incomplete_order():
    assert removal_rank(3, [2], [0, 1]).tolist() == [2.0, 3.0, 1.0]
    with pytest.raises(ValueError, match="not every layer"):
        removal_rank(3, [2], [0])
    with pytest.raises(ValueError, match="k=4"):
        greedy_removal(model_with(4, 0), tiny_split(n=2), 4, batch_size=2, w_rating=W)
