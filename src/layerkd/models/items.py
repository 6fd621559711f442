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

from layerkd.models.text import PROMPT_HEAD, PROMPT_TAIL, SEPARATOR, tokenize_with_title_mask

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
