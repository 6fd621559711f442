"""Vocabulary trimming: a trimmed student scores exactly as the untrimmed one, reloads with the
plain HF classes, keeps only the tokens the dataset uses, and rejects any other token."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from layerkd.config import defaults
from layerkd.models.backbone import embedding_params, keep_layers, packaged_gguf
from layerkd.models.recmodel import load_recmodel
from layerkd.models.samples import load_split
from layerkd.models.train import score_split
from layerkd.student.build import build_student
from layerkd.student.vocab import (
    id_map,
    remap_tokenizer,
    trim_vocab,
    used_token_ids,
)
from tests.student.test_build import NARROW, make_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("vocab"))


def _frames(ws):
    return pd.read_parquet(ws["items"]), pd.read_parquet(ws["samples"])


def _scores(model, tok, ws, split):
    items, samples = _frames(ws)
    data = load_split(samples, items, tok, split, 64, model.items_mode)
    return score_split(model, data, 8)


def _build(ws, out, mode, trim):
    return build_student(
        teacher=ws["teacher"], features=ws["features"], item_table=ws["items"],
        samples=ws["samples"], layerset=ws["layerset"], cache=ws["cache"], init=out,
        mode=mode, seed=0, compact=defaults("student.compact", **NARROW), trim_vocab=trim,
    )  # fmt: skip


def test_id_map_keeps_the_order_of_kept_and_dropped_ids():
    # kept 1, 4 → 0, 1; dropped 0, 2, 3, 5 → 2, 3, 4, 5
    assert id_map([1, 4], 6) == {1: 0, 4: 1, 0: 2, 2: 3, 3: 4, 5: 5}


def test_used_tokens_are_those_of_the_prompts_and_item_texts(ws):
    items, samples = _frames(ws)
    model, tok, _ = load_recmodel(ws["teacher"], torch.load(ws["features"])["features"])
    used = used_token_ids(tok, samples, items, "text")
    # hand-computed: the word-level tokenizer's ids of every word the prompts hold
    words = set(" ".join(items["text"]).split())
    words |= {"the", "user", "bought", "these", "items", ",", "oldest", "first", ":", ";"}
    words |= {"next", "purchase"}
    expect = {tok.convert_tokens_to_ids(w) for w in words} | set(tok.all_special_ids)
    assert used == sorted(expect)
    assert len(used) < model.lm.config.vocab_size
    # ids mode: only the instruction's words (and the special tokens) remain
    ids_mode = used_token_ids(tok, samples, items, "ids")
    assert not {tok.convert_tokens_to_ids(w) for w in set(" ".join(items["text"]).split())} & (
        set(ids_mode) - set(tok.all_special_ids)
    )
    assert set(ids_mode) < set(used)


@pytest.mark.parametrize("mode", ["keep", "compact"])
def test_trimmed_student_scores_exactly_as_untrimmed_and_reloads(ws, tmp_path, mode):
    full = _build(ws, tmp_path / "full", mode, trim=False)
    lean = _build(ws, tmp_path / "lean", mode, trim=True)
    assert lean["vocab"]["student"] < full["vocab"]["student"] == full["vocab"]["teacher"]
    width = NARROW["hidden_size"] if mode == "compact" else 32
    shrink = (full["vocab"]["student"] - lean["vocab"]["student"]) * width
    assert full["parameters"] - lean["parameters"] == shrink  # tied head: counted once
    assert lean["embedding_parameters"] == lean["vocab"]["student"] * width
    feats = torch.load(ws["features"])["features"]
    a, tok_a, _ = load_recmodel(tmp_path / "full", feats)
    b, tok_b, _ = load_recmodel(tmp_path / "lean", feats)
    for split in ("train", "valid"):  # every sample of the data
        for x, y in zip(_scores(a, tok_a, ws, split), _scores(b, tok_b, ws, split), strict=True):
            np.testing.assert_array_equal(x, y)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "lean")
    assert plain.get_input_embeddings().weight.shape[0] == lean["vocab"]["student"]
    assert AutoTokenizer.from_pretrained(tmp_path / "lean").pad_token_id < lean["vocab"]["student"]


def test_a_token_no_prompt_holds_is_rejected_clearly(ws, tmp_path):
    _build(ws, tmp_path / "lean", "keep", trim=True)
    model, tok, _ = load_recmodel(tmp_path / "lean", torch.load(ws["features"])["features"])
    items, samples = _frames(ws)
    items = items.assign(text=items["text"].str.replace("red", "zebra"))
    tok.add_tokens(["zebra"])  # a token outside the trimmed vocabulary
    data = load_split(samples, items, tok, "train", 64)
    with pytest.raises(ValueError, match="trimmed vocabulary"):
        score_split(model, data, 8)


def test_untied_head_is_sliced_with_the_embedding(ws):
    model, tok, _ = load_recmodel(ws["teacher"], torch.load(ws["features"])["features"])
    lm = model.lm
    lm.config.tie_word_embeddings = False
    lm.lm_head.weight = torch.nn.Parameter(torch.randn_like(lm.lm_head.weight))
    head = lm.lm_head.weight.detach().clone()
    keep = [0, 1, 2, 5, 7]
    trim_vocab(lm, tok, keep)
    torch.testing.assert_close(lm.lm_head.weight, head[keep], rtol=0, atol=0)
    assert embedding_params(lm) == 2 * len(keep) * lm.config.hidden_size


def test_renumbered_bpe_tokenizer_tokenises_the_same_text(tmp_path):
    """On SmolLM2's real byte-level BPE tokenizer: the same tokens, new ids."""
    gguf = packaged_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    texts = ["Logitech G502 HERO gaming mouse ; Next purchase:", "Zelda: Breath of the Wild"]
    old = tok(texts, add_special_tokens=False)["input_ids"]
    keep = sorted({t for row in old for t in row} | set(tok.all_special_ids))
    mapping = id_map(keep, len(tok))
    new_tok = remap_tokenizer(tok, mapping)
    new = new_tok(texts, add_special_tokens=False)["input_ids"]
    assert new == [[mapping[t] for t in row] for row in old]
    assert max(t for row in new for t in row) < len(keep)
    assert new_tok.pad_token_id == mapping[tok.pad_token_id]
    assert new_tok.decode(new[1]) == texts[1]
    tok.save_pretrained(tmp_path / "old")
    new_tok.save_pretrained(tmp_path / "new")
    added = {
        name: {
            a["content"]: a["id"]
            for a in json.loads((tmp_path / name / "tokenizer.json").read_text())["added_tokens"]
        }
        for name in ("old", "new")
    }
    assert added["new"] == {c: mapping[i] for c, i in added["old"].items()}


def test_trim_rejects_unsorted_or_out_of_range_ids(ws):
    model, tok, _ = load_recmodel(ws["teacher"], torch.load(ws["features"])["features"])
    keep_layers(model.lm, [0])
    with pytest.raises(ValueError, match="sorted distinct"):
        trim_vocab(model.lm, tok, [3, 1])
    with pytest.raises(ValueError, match="sorted distinct"):
        trim_vocab(model.lm, tok, [0, 10**6])
