"""Ablation against actually deleting the layer and recomputing the loss sample by sample."""

from __future__ import annotations

import copy

import pytest
import torch

from layerkd.importance.ablation import ablation_scores
from layerkd.models.backbone import keep_layers
from layerkd.models.recmodel import task_loss
from tests.tiny import tiny_model, tiny_split


def _loss_one_by_one(model, data):
    with torch.no_grad():
        losses = [
            float(task_loss(model(*data.batch([i])[:2]), data.rating[[i]], 0.3))
            for i in range(len(data))
        ]
    return sum(losses) / len(losses)


def assert_ablation_equals_deleting_each_layer(model, data, batch_size):
    """Ablation scores against deep copies with the layer really deleted, sample by sample."""
    n_layers = model.n_layers
    full, deltas = ablation_scores(model, data, batch_size=batch_size, w_rating=0.3)
    assert full == pytest.approx(_loss_one_by_one(model, data), rel=1e-5)
    for layer in range(n_layers):
        pruned = copy.deepcopy(model)
        keep_layers(pruned.lm, [i for i in range(n_layers) if i != layer])
        expected = _loss_one_by_one(pruned, data) - full
        assert deltas[layer] == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("items", ["text", "ids", "hybrid"])
def test_ablation_equals_deleting_the_layer(items):
    model, _ = tiny_model(seed=5, items=items)
    data = tiny_split(n=6, seed=1, items=items)
    assert_ablation_equals_deleting_each_layer(model, data, batch_size=4)
    # the model itself is left whole
    assert model.n_layers == 4 and model.lm.config.num_hidden_layers == 4
