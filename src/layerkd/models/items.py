"""How items reach the teacher (``teacher.items``): the one place that knows the three modes.

* ``text``: a history is the prompt of :func:`~layerkd.models.text.history_prompt` (the item
  titles); item vectors are projections of the base teacher's pooled item-text features.
* ``ids`` (E4SRec, the teacher SLMRec distils): a history is a short fixed instruction (the
  LLM's own tokens) followed by one *item slot* per history item; a slot's input embedding is
  ``Linear(d → hidden)`` of the item's row in an item table learned by the DAG's SASRec; the
  user vector is ``Linear(hidden → d)`` of the last state and an item's vector is its table
  row, so ``score(u, i) = <u, table_i> + b_i``.
* ``hybrid`` (LLaRA): each history item is its title tokens followed by its slot; an item's
  vector is the projected text features plus its table row.

An item slot is stored in a token-id sequence as the negative number ``-(index + 1)`` of the
item's row in ``items.parquet``: no tokenizer id is negative, so padding, truncation and
batching treat slots like tokens, a vocabulary change cannot collide with them, and a slot
that reaches the LLM's token embedding unconverted fails loudly (an index error) instead of
reading a wrong row. :meth:`~layerkd.models.recmodel.RecModel.embed` turns slots into their
soft tokens; :meth:`~layerkd.models.recmodel.RecHeads.item_vectors` gives the item tower.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from layerkd.models.backbone import decoder
from layerkd.models.text import (
    PROMPT_HEAD,
    PROMPT_TAIL,
    SEPARATOR,
    batches,
    pad_left,
    tokenize,
    tokenize_with_title_mask,
)

MODES = ("text", "ids", "hybrid")
TABLE_MODES = ("frozen", "trainable")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`; a clear error naming the config key otherwise."""
    if mode not in MODES:
        raise ValueError(f"teacher.items={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def uses_text(mode: str) -> bool:
    """Whether item vectors read the pooled item-text features (``text`` and ``hybrid``)."""
    return check_mode(mode) != "ids"


def uses_table(mode: str) -> bool:
    """Whether the mode reads the SASRec item table (``ids`` and ``hybrid``)."""
    return check_mode(mode) != "text"


def slot(index: int) -> int:
    """The token-id code of the item at row ``index`` of ``items.parquet``."""
    return -(int(index) + 1)


def history_tokens(
    tok: object,
    titles_per_prompt: Sequence[Sequence[str]],
    items_per_prompt: Sequence[Sequence[int]],
    max_tokens: int,
    mode: str,
) -> tuple[list[list[int]], list[list[bool]], list[int]]:
    """Token ids (item slots negative) of each history, left-truncated to ``max_tokens``; per
    token whether it belongs to an item (title tokens, slots or both: the attention method's
    "share on item tokens"); and how many of its items each history still shows (whole titles
    in ``text``, slots in the ID modes)."""
    if check_mode(mode) == "text":
        return tokenize_with_title_mask(tok, titles_per_prompt, max_tokens)

    def encode(texts: list[str]) -> list[list[int]]:
        return list(tok(texts, add_special_tokens=False)["input_ids"])  # type: ignore[operator]

    head, tail, sep = encode([PROMPT_HEAD.rstrip(), PROMPT_TAIL, SEPARATOR])
    ids, masks, shown = [], [], []
    for titles, items in zip(titles_per_prompt, items_per_prompt, strict=True):
        row, mask = list(head), [False] * len(head)
        title_ids = encode(list(titles)) if mode == "hybrid" and titles else []
        for n, item in enumerate(items):
            if mode == "hybrid":
                if n:
                    row, mask = row + sep, mask + [False] * len(sep)
                row, mask = row + title_ids[n], mask + [True] * len(title_ids[n])
            row, mask = row + [slot(item)], mask + [True]
        row, mask = row + tail, mask + [False] * len(tail)
        ids.append(row[-max_tokens:])
        masks.append(mask[-max_tokens:])
        shown.append(sum(t < 0 for t in ids[-1]))
    return ids, masks, shown


@torch.no_grad()
def encode_items(
    lm: nn.Module, tok: Any, texts: list[str], max_tokens: int, batch_size: int = 32
) -> torch.Tensor:
    """Mean-pooled final hidden state (after the final norm) of each item text, cut at its
    end to ``max_tokens`` tokens: (n_items, H)."""
    lm.eval()
    ids = tokenize(tok, texts, max_tokens, keep="start")
    ids = [r if r else [tok.pad_token_id] for r in ids]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    feats = torch.zeros(len(ids), lm.config.hidden_size)
    for rng in tqdm(batches(len(order), batch_size), desc="encode items", unit="batch"):
        idx = [order[i] for i in rng]
        b = pad_left([ids[i] for i in idx], tok.pad_token_id)
        b = b.to(decoder(lm).embed_tokens.weight.device)
        out = decoder(lm)(
            input_ids=b.input_ids,
            attention_mask=b.attention_mask,
            position_ids=b.position_ids,
            use_cache=False,
        )
        m = b.attention_mask.unsqueeze(-1).float().to(out.last_hidden_state.device)
        feats[idx] = ((out.last_hidden_state.float() * m).sum(1) / m.sum(1)).cpu()
    return feats


def _load_for_items(path: Path, items: Any) -> dict[str, Any]:
    """A file of per-item rows, checked row by row against the items frame (``item_id``)."""
    blob = torch.load(path, weights_only=False)
    if blob["item_ids"] != items["item_id"].tolist():
        raise ValueError(f"{path} was computed for other items than items.parquet: rerun it")
    return blob


def load_item_inputs(path: Path, items: Any) -> tuple[torch.Tensor, str, torch.Tensor | None]:
    """What ``prepare_teacher`` saved: the item-text features, the ``teacher.items`` mode they
    were prepared for (a file without one is ``text``) and the SASRec item table that
    initialises the heads' table in the ID modes (``None`` in ``text``)."""
    blob = _load_for_items(path, items)
    return blob["features"], str(blob.get("items", "text")), blob.get("table")


def load_features(path: Path, items: Any) -> torch.Tensor:
    """The item-text features of :func:`load_item_inputs` (what scoring a saved model needs)."""
    return load_item_inputs(path, items)[0]


def load_item_table(path: Path, items: Any) -> torch.Tensor:
    """The item table (n_items, d) that ``evaluate_sasrec`` saved, in ``items.parquet`` order."""
    return _load_for_items(path, items)["table"].float()
