"""Turn ``samples.parquet`` rows into tokenised, index-encoded tensors for one split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerkd.models.items import history_tokens
from layerkd.models.text import TokenBatch, pad_left


@dataclass
class SplitData:
    """One split: token ids per sample, candidate item indices (target at 0), ratings."""

    split: str
    user_ids: list[str]
    ids: list[list[int]]
    cand: torch.Tensor
    rating: torch.Tensor
    pad_id: int
    title_mask: list[list[bool]] | None = None
    shown: list[tuple[int, int]] | None = None  # (history items, items the prompt shows)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, idx: Any) -> tuple[TokenBatch, torch.Tensor, torch.Tensor]:
        """The padded token batch, candidates and ratings of samples ``idx``."""
        idx = list(idx)
        return pad_left([self.ids[i] for i in idx], self.pad_id), self.cand[idx], self.rating[idx]

    def titles(self, idx: Any) -> torch.Tensor:
        """Left-padded (B, T) bool mask of the title tokens of samples ``idx``."""
        if self.title_mask is None:
            raise ValueError(f"split {self.split!r} was loaded without title masks")
        rows = [self.title_mask[i] for i in idx]
        width = max(len(r) for r in rows)
        out = torch.zeros(len(rows), width, dtype=torch.bool)
        for r, row in enumerate(rows):
            out[r, width - len(row) :] = torch.tensor(row, dtype=torch.bool)
        return out

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
            None if self.title_mask is None else [self.title_mask[i] for i in idx],
            None if self.shown is None else [self.shown[i] for i in idx],
        )

    def prompt_stats(self) -> dict[str, float]:
        """How much of the histories the prompts show: the mean number of history items, the
        mean shown (``teacher.max_prompt_tokens`` cuts the oldest) and the share of prompts
        that lose at least one item."""
        if not self.shown:
            raise ValueError(f"split {self.split!r} was loaded without prompt statistics")
        total = np.array([t for t, _ in self.shown], dtype=float)
        seen = np.array([s for _, s in self.shown], dtype=float)
        return {
            "samples": len(self.shown),
            "mean_history_items": float(total.mean()),
            "mean_items_shown": float(seen.mean()),
            "share_losing_an_item": float((seen < total).mean()),
        }


HALVES = ("select", "judge")


def half_rows(samples: pd.DataFrame, half: str) -> pd.DataFrame:
    """``samples`` with only the validation rows of ``half`` (``select``: early stopping and
    the screen; ``judge``: the report's validation numbers; see
    :func:`layerkd.data.samples.valid_halves`); every other split is kept whole."""
    if half not in HALVES:
        raise ValueError(f"validation half {half!r}: expected one of {HALVES}")
    if "valid_half" not in samples:
        raise ValueError(
            "samples.parquet has no valid_half column (written by an older prepare_data): "
            "rerun prepare_data"
        )
    return samples[(samples["split"] != "valid") | (samples["valid_half"] == half)]


def item_index(items: pd.DataFrame) -> dict[str, int]:
    """Map item id → row position in ``items.parquet`` (the item index used by every model)."""
    return {str(i): n for n, i in enumerate(items["item_id"].tolist())}


def load_split(
    samples: pd.DataFrame,
    items: pd.DataFrame,
    tok: Any,
    split: str,
    max_tokens: int,
    mode: str = "text",
) -> SplitData:
    """Tokenise the histories of ``split`` as ``teacher.items`` ``mode`` shows them (see
    :mod:`layerkd.models.items`) and encode candidates as item indices."""
    rows = samples[samples["split"] == split]
    if rows.empty:
        raise ValueError(f"samples.parquet has no rows with split={split!r}")
    index = item_index(items)
    titles = dict(zip(items["item_id"].astype(str), items["text"].astype(str), strict=True))
    histories = [[titles[str(i)] for i in h] for h in rows["history"]]
    positions = [[index[str(i)] for i in h] for h in rows["history"]]
    cand_lists = [[index[str(i)] for i in c] for c in rows["candidates"]]
    widths = {len(c) for c in cand_lists}
    if len(widths) != 1:
        raise ValueError(f"split {split!r}: candidate lists differ in length {sorted(widths)}")
    ids, masks, shown = history_tokens(tok, histories, positions, max_tokens, mode)
    ratings = rows["target_rating"].astype(float).to_numpy(dtype=np.float32)
    return SplitData(
        split=split,
        user_ids=rows["user_id"].astype(str).tolist(),
        ids=ids,
        cand=torch.tensor(cand_lists, dtype=torch.long),
        rating=torch.from_numpy(ratings),
        pad_id=int(tok.pad_token_id),
        title_mask=masks,
        shown=[(len(h), s) for h, s in zip(histories, shown, strict=True)],
    )
