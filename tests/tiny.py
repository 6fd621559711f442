"""A tiny random recommender (4-layer Llama, hidden 32) and hand-made samples for tests."""

from __future__ import annotations

import torch

from layerkd.models.backbone import build_tiny
from layerkd.models.recmodel import RecHeads, RecModel
from layerkd.models.samples import SplitData

TINY = {"num_layers": 4, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4}
#: a small SASRec (``sasrec`` section overrides) that learns the tests' walks in seconds
SMALL_SASREC = {
    "hidden": 32, "blocks": 1, "heads": 2, "dropout": 0.1, "max_len": 10, "epochs": 80,
    "lr": 0.01, "batch_size": 64,
}  # fmt: skip
WORDS = "red blue green shoe cup lamp book pen coffee yoga tent stove"


def tiny_model(
    seed: int = 0,
    n_items: int = 12,
    dim: int = 16,
    items: str = "text",
    item_table: str = "frozen",
) -> tuple[RecModel, object]:
    """A :class:`RecModel` with random weights (non-zero item bias) and its tokenizer; in the
    ID modes of ``teacher.items`` (``ids``, ``hybrid``) with a random item table."""
    lm, tok = build_tiny(TINY, [WORDS], seed)
    torch.manual_seed(seed + 1)
    item_dim = 0 if items == "ids" else 8
    table = None if items == "text" else torch.randn(n_items, dim) * 0.5
    heads = RecHeads(
        lm.config.hidden_size, item_dim, n_items, dim,
        items=items, table=table, item_table=item_table,
    )  # fmt: skip
    with torch.no_grad():
        heads.item_bias.normal_(0, 0.1)
    model = RecModel(lm, heads, torch.randn(n_items, item_dim))
    return model.eval(), tok


def tiny_split(
    n: int = 7, n_items: int = 12, n_cand: int = 5, seed: int = 0, items: str = "text"
) -> SplitData:
    """``n`` samples with token sequences of different lengths (so batches need padding); in
    the ID modes every third token is an item slot (``ids``: every token after the first)."""
    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(3, 15, (3 + (i * 5) % 9,), generator=g).tolist() for i in range(n)]
    if items != "text":
        ids = [
            [t if (j == 0 or (items == "hybrid" and j % 3)) else -(1 + t % n_items) for j, t in
             enumerate(row)]
            for row in ids
        ]  # fmt: skip
    cand = torch.stack([torch.randperm(n_items, generator=g)[:n_cand] for _ in range(n)])
    rating = torch.tensor([float(1 + i % 5) if i % 3 else float("nan") for i in range(n)])
    titles = [[(t + i) % 3 != 0 for t in range(len(row))] for i, row in enumerate(ids)]
    return SplitData("train", [f"u{i}" for i in range(n)], ids, cand, rating, 0, titles)
