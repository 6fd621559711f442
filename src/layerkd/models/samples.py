"""Turn ``samples.parquet`` rows into tokenised, index-encoded tensors for one split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerkd.models.text import TokenBatch, history_prompt, pad_left, tokenize


@dataclass
class SplitData:
    """One split: token ids per sample, candidate item indices (target at 0), ratings."""

    split: str
    user_ids: list[str]
    ids: list[list[int]]
    cand: torch.Tensor
    rating: torch.Tensor
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: Any) -> tuple[TokenBatch, torch.Tensor, torch.Tensor]:
        """The padded token batch, candidates and ratings of samples ``idx``."""
        idx = list(idx)
        return pad_left([self.ids[i] for i in idx], self.pad_id), self.cand[idx], self.rating[idx]

    def subset(self, idx: Any) -> SplitData:
        """A new :class:`SplitData` with the samples ``idx`` only (in that order)."""
        idx = list(idx)
        return SplitData(
            self.split,
            [self.user_ids[i] for i in idx],
            [self.ids[i] for i in idx],
            self.cand[idx],
            self.rating[idx],
            self.pad_id,
        )


def item_index(items: pd.DataFrame) -> dict[str, int]:
    """Map item id → row position in ``items.parquet`` (the item index used by every model)."""
    return {str(i): n for n, i in enumerate(items["item_id"].tolist())}


def load_split(
    samples: pd.DataFrame, items: pd.DataFrame, tok: Any, split: str, max_tokens: int
) -> SplitData:
    """Tokenise the history prompts of ``split`` and encode candidates as item indices."""
    rows = samples[samples["split"] == split]
    if rows.empty:
        raise ValueError(f"samples.parquet has no rows with split={split!r}")
    index = item_index(items)
    titles = dict(zip(items["item_id"].astype(str), items["text"].astype(str), strict=True))
    prompts = [history_prompt([titles[str(i)] for i in h]) for h in rows["history"]]
    cand_lists = [[index[str(i)] for i in c] for c in rows["candidates"]]
    widths = {len(c) for c in cand_lists}
    if len(widths) != 1:
        raise ValueError(f"split {split!r}: candidate lists differ in length {sorted(widths)}")
    ratings = rows["target_rating"].astype(float).to_numpy(dtype=np.float32)
    return SplitData(
        split=split,
        user_ids=rows["user_id"].astype(str).tolist(),
        ids=tokenize(tok, prompts, max_tokens),
        cand=torch.tensor(cand_lists, dtype=torch.long),
        rating=torch.from_numpy(ratings),
        pad_id=int(tok.pad_token_id),
    )
