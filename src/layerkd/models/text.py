"""Prompts and tokenisation: histories become left-padded, left-truncated token batches.

Left padding keeps the last real token at position -1 (the user state is read there), and
explicit position ids (``cumsum(mask) - 1``) make a sample's result independent of how much
padding its batch needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

PROMPT_HEAD = "The user bought these items, oldest first: "
PROMPT_TAIL = " ; Next purchase:"
SEPARATOR = " ; "


def history_prompt(titles: Sequence[str]) -> str:
    """The text the teacher reads for one user history (oldest item first)."""
    return PROMPT_HEAD + SEPARATOR.join(titles) + PROMPT_TAIL


def title_spans(titles: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of each title inside :func:`history_prompt` of ``titles``."""
    spans, pos = [], len(PROMPT_HEAD)
    for i, t in enumerate(titles):
        spans.append((pos, pos + len(t)))
        pos += len(t) + (len(SEPARATOR) if i < len(titles) - 1 else 0)
    return spans


def tokenize_with_title_mask(
    tok: object, titles_per_prompt: Sequence[Sequence[str]], max_tokens: int
) -> tuple[list[list[int]], list[list[bool]], list[int]]:
    """Token ids of each history prompt (left-truncated), per token whether it belongs to an
    item title (the attention method measures the share of attention landing on them), and
    how many titles each prompt shows whole (the oldest are the ones the truncation cuts)."""
    prompts = [history_prompt(t) for t in titles_per_prompt]
    enc = tok(prompts, add_special_tokens=False, return_offsets_mapping=True)  # type: ignore[operator]
    ids, masks, shown = [], [], []
    for row, offsets, titles in zip(
        enc["input_ids"], enc["offset_mapping"], titles_per_prompt, strict=True
    ):
        spans = title_spans(titles)
        mask = [any(a < e and b > s for s, e in spans) for a, b in offsets]
        ids.append(row[-max_tokens:])
        masks.append(mask[-max_tokens:])
        first = offsets[-max_tokens][0] if len(offsets) > max_tokens else 0
        shown.append(sum(s >= first for s, _ in spans))
    return ids, masks, shown


@dataclass
class TokenBatch:
    """A padded batch: ``input_ids``, ``attention_mask``, ``position_ids`` of shape (B, T)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor

    def to(self, device: str | torch.device) -> TokenBatch:
        """Move every tensor to ``device``."""
        return TokenBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.position_ids.to(device)
        )


def tokenize(
    tok: object, texts: Sequence[str], max_tokens: int, keep: str = "end"
) -> list[list[int]]:
    """Token ids per text, at most ``max_tokens``: ``keep='end'`` keeps the last ones (a
    history: the most recent items), ``keep='start'`` the first (an item text: the product
    name and brand come first)."""
    ids = tok(list(texts), add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    if keep == "start":
        return [row[:max_tokens] for row in ids]
    return [row[-max_tokens:] if len(row) > max_tokens else row for row in ids]


def pad_left(rows: Sequence[Sequence[int]], pad_id: int) -> TokenBatch:
    """Left-pad token id lists into a :class:`TokenBatch` with explicit position ids."""
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("cannot build a batch with an empty token sequence")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return TokenBatch(ids, mask, pos)


def batches(n: int, batch_size: int) -> list[range]:
    """Consecutive index ranges covering ``range(n)``."""
    return [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
