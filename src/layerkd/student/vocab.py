"""Vocabulary trimming (``student.trim_vocab``): a student keeps only the token embeddings that
the dataset's texts use.

SmolLM2's 49,152-token embedding is 28M of a k = 8 keep student's 57M parameters, yet a
dataset's prompts use a few thousand tokens. :func:`used_token_ids` finds the ids that any
prompt of the dataset can hold (every split's histories as the teacher's ``items`` mode shows
them, untruncated, each item text alone and inside a prompt, and the tokenizer's special
tokens); :func:`trim_vocab` keeps those rows of the token embedding (and of an untied LM head)
and renumbers the tokenizer so that the kept tokens get ids ``0 .. K-1`` in their old order.

The tokenizer keeps every token it had (a BPE merge may pass through a token that no text ends
with), so tokenisation is unchanged and only the ids move: the dropped tokens get ids ``K`` and
above, which the trimmed model rejects with a clear error
(:meth:`~layerkd.models.recmodel.RecModel.user_states`) instead of reading a wrong row. The saved
student loads with ``AutoModelForCausalLM`` and ``AutoTokenizer`` and scores exactly as the
untrimmed one (tested).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from layerkd.models.items import history_tokens, uses_text
from layerkd.models.samples import item_index
from layerkd.models.text import history_prompt

UNTRUNCATED = 10**9
TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")


def used_token_ids(tok: Any, samples: pd.DataFrame, items: pd.DataFrame, mode: str) -> list[int]:
    """Sorted token ids that the dataset's prompts can hold in ``teacher.items`` ``mode``.

    Every split's histories, untruncated (any ``max_prompt_tokens`` keeps a subset), plus each
    item text alone and as a one-item prompt in the modes that show titles (so a history that
    no sample holds still tokenises into kept ids), plus every special and added token. In
    ``ids`` mode only the instruction's tokens and the special tokens remain.
    """
    index = item_index(items)
    titles = dict(zip(items["item_id"].astype(str), items["text"].astype(str), strict=True))
    histories = [[titles[str(i)] for i in h] for h in samples["history"]]
    positions = [[index[str(i)] for i in h] for h in samples["history"]]
    ids, _, _ = history_tokens(tok, histories, positions, UNTRUNCATED, mode)
    used = {t for row in ids for t in row if t >= 0}
    if uses_text(mode):
        texts = list(titles.values())
        for rows in (
            tok(texts, add_special_tokens=False)["input_ids"],
            tok([history_prompt([t]) for t in texts], add_special_tokens=False)["input_ids"],
        ):
            used.update(t for row in rows for t in row)
    used.update(int(i) for i in tok.all_special_ids)
    used.update(int(i) for i in getattr(tok, "added_tokens_decoder", {}))
    if tok.pad_token_id is not None:
        used.add(int(tok.pad_token_id))
    return sorted(used)


def id_map(keep: list[int], vocab_size: int) -> dict[int, int]:
    """Old id → new id: the kept ids become ``0 .. K-1`` (in their old order), the others
    ``K ..`` (also in order)."""
    kept = set(keep)
    order = list(keep) + [i for i in range(vocab_size) if i not in kept]
    return {old: new for new, old in enumerate(order)}


def remap_tokenizer_json(spec: dict[str, Any], mapping: dict[int, int]) -> dict[str, Any]:
    """A ``tokenizer.json`` dict with every token id renumbered by ``mapping``: the model's
    vocabulary (BPE, WordPiece, WordLevel), the added tokens and a template post-processor's
    special tokens."""
    model = spec["model"]
    if not isinstance(model.get("vocab"), dict):
        raise ValueError(
            f"student.trim_vocab: a {model.get('type')} tokenizer has no token → id map to "
            "renumber (BPE, WordPiece and WordLevel do); set student.trim_vocab: false"
        )

    def new(i: int) -> int:
        if i not in mapping:
            raise ValueError(f"student.trim_vocab: token id {i} is outside the model's vocabulary")
        return mapping[i]

    model["vocab"] = {t: new(i) for t, i in model["vocab"].items()}
    for added in spec.get("added_tokens") or []:
        added["id"] = new(added["id"])
    post = spec.get("post_processor") or {}
    for special in (post.get("special_tokens") or {}).values():
        special["ids"] = [new(i) for i in special["ids"]]
    return spec


def remap_tokenizer(tok: Any, mapping: dict[int, int]) -> Any:
    """A copy of the (fast) tokenizer ``tok`` whose ids are renumbered by ``mapping``, saved and
    reloaded with ``AutoTokenizer`` exactly as a student directory will be."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        path = Path(tmp) / "tokenizer.json"
        if not path.is_file():
            raise ValueError("student.trim_vocab needs a fast tokenizer (a tokenizer.json)")
        spec = remap_tokenizer_json(json.loads(path.read_text()), mapping)
        path.write_text(json.dumps(spec, ensure_ascii=False))
        cfg_path = Path(tmp) / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        if "added_tokens_decoder" in cfg:
            cfg["added_tokens_decoder"] = {
                str(mapping[int(k)]): v for k, v in cfg["added_tokens_decoder"].items()
            }
            cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2))
        for stale in ("vocab.json", "merges.txt", "vocab.txt"):  # slow-tokenizer files
            (Path(tmp) / stale).unlink(missing_ok=True)
        return AutoTokenizer.from_pretrained(tmp)


@torch.no_grad()
def trim_vocab(lm: nn.Module, tok: Any, keep: list[int]) -> Any:
    """Keep the token-embedding rows ``keep`` of ``lm`` (in place; a tied LM head follows, an
    untied one is sliced alike), renumber the config's special token ids and return the
    renumbered tokenizer."""
    emb = lm.get_input_embeddings()
    vocab = int(emb.weight.shape[0])
    if not keep or keep[-1] >= vocab or keep != sorted(set(keep)):
        raise ValueError(f"trim_vocab: keep must be sorted distinct ids below {vocab}")
    mapping = id_map(keep, vocab)
    rows = torch.tensor(keep, dtype=torch.long)
    head = lm.get_output_embeddings()
    tied = head is not None and head.weight is emb.weight
    new_emb = nn.Embedding(len(keep), emb.weight.shape[1], dtype=emb.weight.dtype)
    new_emb.weight = nn.Parameter(emb.weight[rows].clone(), requires_grad=emb.weight.requires_grad)
    lm.set_input_embeddings(new_emb)
    if head is not None:
        new_head = nn.Linear(head.in_features, len(keep), bias=head.bias is not None)
        new_head.weight = new_emb.weight if tied else nn.Parameter(head.weight[rows].clone())
        if head.bias is not None:
            new_head.bias = nn.Parameter(head.bias[rows].clone())
        lm.set_output_embeddings(new_head)
    lm.config.vocab_size = len(keep)
    for cfg in (lm.config, getattr(lm, "generation_config", None)):
        for key in TOKEN_ID_KEYS:
            value = getattr(cfg, key, None) if cfg is not None else None
            if isinstance(value, int):
                setattr(cfg, key, mapping[value])
            elif isinstance(value, list):
                setattr(cfg, key, [mapping[v] for v in value])
    return remap_tokenizer(tok, mapping)
