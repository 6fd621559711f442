"""Negatives of the sampled objective, redrawn every epoch (``teacher.finetune.negatives``).

``samples.parquet`` fixes each training sample's negatives once, at preparation, and excludes
every item the user ever touched, later ones included (the validation and test targets among
them): a model trained on them never sees the user's future items as negatives, and always the
same ones. With ``negatives: epoch`` (the default) each epoch draws new negatives for every
training sample from ``np.random.default_rng([seed, epoch, STREAM])``, excluding only the
user's items up to and including the sample's target (the user's interactions in
``interactions.parquet``, in their chronological order). ``fixed`` keeps the prepared ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from layerkd.models.samples import SplitData, item_index

STREAM = 13  # the generator of the redrawn negatives: (seed, epoch, STREAM)
MODES = ("epoch", "fixed")


class EpochNegatives:
    """Redraws the negatives (candidate columns 1..) of a training split every epoch, in place
    (every reader of the split, the cached-state batches included, sees the new ones)."""

    def __init__(
        self, data: SplitData, interactions: pd.DataFrame, items: pd.DataFrame, seed: int
    ) -> None:
        index = item_index(items)
        seqs = {
            str(u): [index[str(i)] for i in g]
            for u, g in interactions.groupby(interactions["user_id"].astype(str), sort=False)[
                "item_id"
            ]
        }
        self.data, self.seed, self.n_items = data, int(seed), len(items)
        self.known: list[np.ndarray] = []
        for user, target in zip(data.user_ids, data.cand[:, 0].tolist(), strict=True):
            seq = seqs.get(str(user), [])
            if target not in seq:
                raise ValueError(
                    f"training target {items['item_id'].iloc[target]!r} of user {user!r} is not "
                    "among the user's interactions: interactions.parquet and samples.parquet "
                    "come from different preparations"
                )
            self.known.append(np.asarray(seq[: seq.index(target) + 1], dtype=np.int64))
        self.n_neg = int(data.cand.shape[1]) - 1
        short = [u for u, k in zip(data.user_ids, self.known, strict=True)
                 if self.n_items - len(k) < self.n_neg]  # fmt: skip
        if short:
            raise ValueError(f"too few items to draw {self.n_neg} negatives for users {short[:5]}")

    def draw(self, epoch: int) -> torch.Tensor:
        """The negatives (N, n_neg) of ``epoch``: distinct per sample, none of them among the
        user's items up to the target."""
        rng = np.random.default_rng([self.seed, int(epoch), STREAM])
        out = np.empty((len(self.known), self.n_neg), dtype=np.int64)
        for row, known in enumerate(self.known):
            picked: list[int] = []
            while len(picked) < self.n_neg:
                draw = rng.integers(0, self.n_items, size=2 * self.n_neg + len(known))
                for i in draw[~np.isin(draw, known)].tolist():
                    if i not in picked:
                        picked.append(i)
                        if len(picked) == self.n_neg:
                            break
            out[row] = picked
        return torch.from_numpy(out)

    def start_epoch(self, epoch: int) -> None:
        """Put the negatives of ``epoch`` into the split's candidates (target stays at 0)."""
        self.data.cand[:, 1:] = self.draw(epoch)
