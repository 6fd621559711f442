"""SASRec reference row: causality, padding invariance, no NaN, learning a deterministic walk,
reproducibility, the sequences it reads, the stage's record and hypothesis R with SASRec."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from layerkd.config import defaults, settings
from layerkd.data.samples import valid_halves
from layerkd.evaluation.metrics import RANKING_KEYS
from layerkd.evaluation.reference import candidates_digest, eval_record
from layerkd.evaluation.reference import test_rows as eval_rows  # not collected as a test
from layerkd.evaluation.sasrec import (
    SASRec,
    SasrecParams,
    evaluate_sasrec,
    pad_left,
    split_inputs,
    train_and_score,
    trim,
    user_sequences,
)
from layerkd.evaluation.significance import comparison_table
from layerkd.report.hypotheses import reference_check

N_ITEMS, N_NEG = 40, 9
SMALL = SasrecParams(
    hidden=32, blocks=1, heads=2, dropout=0.1, max_len=10, epochs=80, patience=10,
    lr=0.01, weight_decay=0.0, batch_size=64, seed=0,
)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def walk_world(n_users: int = 150, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """(samples, interactions, items): every user walks items i, i+1, i+2, ... in time; the
    last two steps are the valid and test targets. Users 0 and 1 have three interactions (a
    one-item training sequence). Items are listed in a shuffled order."""
    rng = np.random.default_rng(seed)
    names = [f"i{j:02d}" for j in range(N_ITEMS)]
    rows, samples = [], []
    for u in range(n_users):
        length = 3 if u < 2 else int(rng.integers(4, 12))
        start = int(rng.integers(0, N_ITEMS - length + 1))
        walk = [names[start + j] for j in range(length)]
        user = f"u{u:03d}"
        rows += [(user, item, 5.0, 1000 + 10 * j) for j, item in enumerate(walk)]
        others = [n for n in names if n not in walk]
        for split, back in (("valid", 2), ("test", 1)):
            target = walk[-back]
            negs = rng.choice(others, N_NEG, replace=False).tolist()
            hist = walk[:-back][-5:]
            samples.append((split, user, hist, target, 5.0, [target, *negs]))
    cols = ["split", "user_id", "history", "target", "target_rating", "candidates"]
    sample_df = pd.DataFrame(samples, columns=cols).sort_values("split", kind="stable")
    sample_df["valid_half"] = valid_halves(sample_df, 0)  # as prepare_data writes them
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"item_id": rng.permutation(names)})
    return sample_df.reset_index(drop=True), inter, items


def _model(p: SasrecParams = SMALL, n_items: int = 20) -> SASRec:
    torch.manual_seed(0)
    return SASRec(n_items, replace(p, dropout=0.0)).eval()


def test_schema_defaults_are_the_documented_settings():
    p = settings(SasrecParams, "sasrec")
    assert p == SasrecParams(
        hidden=64, blocks=2, heads=2, dropout=0.2, max_len=50, epochs=200, patience=10,
        lr=0.001, weight_decay=0.0, batch_size=128, seed=0,
    )  # fmt: skip


def test_a_position_never_depends_on_later_items():
    model = _model()
    a = torch.tensor([[3, 7, 2, 9, 4, 11, 5, 8]])
    b = a.clone()
    b[0, 5:] = torch.tensor([1, 19, 13])
    with torch.no_grad():
        ha, hb, short = model(a), model(b), model(a[:, :5])
    torch.testing.assert_close(ha[:, :5], hb[:, :5], rtol=0, atol=1e-6)
    torch.testing.assert_close(ha[:, :5], short, rtol=0, atol=1e-6)  # appending changes nothing
    assert not torch.allclose(ha[:, 5:], hb[:, 5:])  # the later positions do see them


def test_padding_side_and_amount_do_not_change_a_score():
    model = _model()
    seq = [3, 7, 2, 9]
    left8, left12 = pad_left([seq], 8), pad_left([seq], 12)
    right8 = torch.tensor([seq + [0] * 4])
    bare = torch.tensor([seq])
    with torch.no_grad():
        vecs = [model.user_vectors(x) for x in (bare, left8, left12, right8)]
    for v in vecs[1:]:
        torch.testing.assert_close(v, vecs[0], rtol=0, atol=1e-5)
    cands = torch.tensor([[10, 3, 5, 17]])
    batch = pad_left([seq, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [6]], 12)  # in a batch, trimmed
    scores = model.score(batch, torch.cat([cands, cands, cands]))
    np.testing.assert_allclose(scores[0], model.score(bare, cands)[0], rtol=0, atol=1e-5)
    assert trim(left12).shape == (1, 4) and trim(right8).shape == (1, 8)


def test_one_item_and_empty_histories_give_finite_scores():
    model = _model()
    seqs = pad_left([[5], [], [4, 6]], 6)  # fully padded rows: every query sees itself
    with torch.no_grad():
        assert torch.isfinite(model(seqs)).all()
    scores = model.score(seqs, torch.tensor([[5, 1, 2]] * 3))
    assert np.isfinite(scores).all()
    with torch.no_grad():
        model.item.weight[2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model.score(seqs, torch.tensor([[5, 1, 2]] * 3))


def test_sequences_leave_out_held_targets_and_test_input_adds_the_valid_target():
    samples, inter, items = walk_world(20)
    index = {str(i): k + 1 for k, i in enumerate(items["item_id"])}
    seqs = user_sequences(samples, inter.sample(frac=1, random_state=1), index)  # any row order
    for user, walk in inter.groupby("user_id")["item_id"]:
        assert seqs[user] == [index[i] for i in list(walk)[:-2]]
    assert len(seqs["u000"]) == 1
    valid = samples[samples["split"] == "valid"]
    after = {u: index[t] for u, t in zip(valid["user_id"], valid["target"], strict=True)}
    users, x, cands = split_inputs(samples, "test", seqs, index, 3, after)
    u = users.index("u005")
    want = (seqs["u005"] + [after["u005"]])[-3:]
    assert x[u, 3 - len(want) :].tolist() == want and x.shape[1] == 3
    test = samples[samples["split"] == "test"].set_index("user_id")
    assert cands[u, 0].item() == index[test.at["u005", "target"]]  # target in column 0


def _write(tmp_path: Path, n_users: int = 150) -> dict[str, Path]:
    samples, inter, items = walk_world(n_users)
    paths = {k: tmp_path / f"{k}.parquet" for k in ("samples", "interactions", "item_table")}
    samples.to_parquet(paths["samples"])
    inter.to_parquet(paths["interactions"])
    items.to_parquet(paths["item_table"])
    return paths


def test_stage_learns_a_walk_and_writes_a_reference_record(tmp_path):
    paths = _write(tmp_path)
    evaluation = defaults("eval", bootstrap=50, max_users=100)
    out = tmp_path / "eval" / "sasrec.json"
    settings_ = {k: getattr(SMALL, k) for k in SMALL.__dataclass_fields__}
    rec = evaluate_sasrec(**paths, metrics=out, sasrec=settings_, evaluation=evaluation)
    assert out.is_file()
    assert rec["model"] == "sasrec" and rec["kind"] == "reference"
    frame = eval_rows(pd.read_parquet(paths["samples"]), 100, evaluation["seed"])
    assert rec["candidates_sha256"] == candidates_digest(frame)
    assert rec["user_ids"] == frame.loc[frame["split"] == "test", "user_id"].tolist()
    assert rec["n_users"] == 100 and rec["n_candidates"] == 1 + N_NEG
    assert rec["params"] > 0 and rec["settings"] == settings_
    t = rec["training"]
    assert 1 <= t["best_epoch"] <= t["epochs_run"] <= SMALL.epochs
    assert t["best_valid_ndcg@5"] == max(h["valid_ndcg@5"] for h in rec["train_log"])
    assert rec["metrics"]["hr@1"] >= 0.9, rec["metrics"]  # the next item ranks first
    assert t["best_valid_ndcg@5"] >= 0.9
    assert rec["full"]["n_items"] == N_ITEMS and rec["full"]["metrics"]["hr@1"] >= 0.8
    assert all(np.isfinite(rec["per_user"][k]).all() for k in RANKING_KEYS)


def test_same_seed_same_scores_other_seed_other_scores():
    samples, inter, items = walk_world(60)
    p = replace(SMALL, epochs=4)
    runs = [train_and_score(samples, inter, items, samples, q) for q in (p, p, replace(p, seed=1))]
    assert np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][3]["history"] == runs[1][3]["history"]
    assert not np.array_equal(runs[0][1], runs[2][1])


def make_eval(name: str, kind: str, shift: float, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(300, 20))
    scores[:, 0] += shift
    users = [f"u{i}" for i in range(300)]
    return eval_record(name, kind, scores, users, "d", bootstrap=100, seed=0, extra={"params": 0})


def _r(sasrec: float | None) -> Any:
    evals = [
        make_eval("teacher", "teacher", 2.0, 1),
        make_eval("popular", "reference", 1.0, 2),
        make_eval("random", "reference", 0.0, 3),
    ]
    if sasrec is not None:
        evals.append(make_eval("sasrec", "reference", sasrec, 4))
    cmp = comparison_table(evals, ["ndcg@5"], n_boot=200, seed=0)
    return reference_check(evals, cmp), cmp


def test_hypothesis_r_needs_the_teacher_to_beat_popular_and_sasrec():
    h, cmp = _r(1.0)
    assert ("teacher", "sasrec") in set(zip(cmp["model"], cmp["versus"], strict=True))
    assert h.verdict == "holds" and "SASRec" in h.claim and "most-popular" in h.claim
    assert len(h.notes) == 2 and "vs SASRec" in h.notes[1]
    h, _ = _r(3.0)
    assert h.verdict == "does not hold"
    assert any("does NOT beat SASRec" in n for n in h.notes)
    assert not any("does NOT beat most-popular" in n for n in h.notes)


def test_hypothesis_r_without_sasrec_is_the_popular_test_alone():
    h, _ = _r(None)
    assert (h.title, h.claim) == ("Teacher vs most-popular", "The teacher beats most-popular.")
    assert h.verdict == "holds" and len(h.notes) == 1
