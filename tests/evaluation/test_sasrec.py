"""The SASRec reference stages: the sequences it reads, learning a deterministic walk through the
one loop under either validation protocol, reproducibility, the files and record it writes, and
hypothesis R with SASRec (the network itself: tests/models/test_sasrec.py)."""

from __future__ import annotations

import json
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
    evaluate_sasrec,
    load_sasrec,
    split_inputs,
    train,
    train_sasrec,
    user_sequences,
)
from layerkd.evaluation.significance import comparison_table
from layerkd.models.sasrec import SasrecParams, SasrecTask
from layerkd.report.hypotheses import reference_check
from tests.tiny import SMALL_SASREC

N_ITEMS, N_NEG = 40, 9
SMALL = settings(SasrecParams, "sasrec", **SMALL_SASREC)
pytestmark = pytest.mark.usefixtures("one_thread")


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


def _train_and_evaluate(tmp_path: Path, p: SasrecParams, primary: str) -> dict[str, Any]:
    paths = _write(tmp_path)
    out = {
        k: tmp_path / "sasrec" / f
        for k, f in (
            ("model", "model.pt"),
            ("table", "item_table.pt"),
            ("train_log", "train_log.parquet"),
        )
    }
    settings_ = {k: getattr(p, k) for k in p.__dataclass_fields__}
    train_sasrec(**paths, **out, sasrec=settings_, primary=primary)  # fmt: skip
    evaluation = defaults("eval", bootstrap=50, max_users=100)
    metrics = tmp_path / "eval" / "sasrec.json"
    rec = evaluate_sasrec(
        **paths, model=out["model"], train_log=out["train_log"], metrics=metrics,
        evaluation=evaluation,
    )  # fmt: skip
    assert metrics.is_file() and json.loads(metrics.read_text())["metrics"] == rec["metrics"]
    return {"rec": rec, "paths": paths, "out": out, "settings": settings_, "eval": evaluation}


@pytest.mark.parametrize("primary", ["full", "sampled"])
def test_stages_learn_a_walk_and_write_the_model_table_and_record(tmp_path, primary):
    run = _train_and_evaluate(tmp_path, SMALL, primary)
    rec, paths = run["rec"], run["paths"]
    assert rec["model"] == "sasrec" and rec["kind"] == "reference"
    frame = eval_rows(pd.read_parquet(paths["samples"]), 100, run["eval"]["seed"])
    assert rec["candidates_sha256"] == candidates_digest(frame)
    assert rec["user_ids"] == frame.loc[frame["split"] == "test", "user_id"].tolist()
    assert rec["n_users"] == 100 and rec["n_candidates"] == 1 + N_NEG
    assert rec["params"] > 0 and rec["settings"] == run["settings"]
    t = rec["training"]
    assert t["primary"] == primary
    assert 1 <= t["best_epoch"] <= t["epochs_run"] <= SMALL.epochs
    assert t["best_valid_ndcg@5"] == max(h["valid_ndcg@5"] for h in rec["train_log"])
    assert rec["metrics"]["hr@1"] >= 0.9, rec["metrics"]  # the next item ranks first
    assert t["best_valid_ndcg@5"] >= 0.9
    assert rec["full"]["n_items"] == N_ITEMS and rec["full"]["metrics"]["hr@1"] >= 0.8
    assert all(np.isfinite(rec["per_user"][k]).all() for k in RANKING_KEYS)
    # the loop's log: one row per optimiser step and one per evaluation (epoch 0 = untrained)
    log = pd.read_parquet(run["out"]["train_log"])
    assert log["step"].max() == t["epochs_run"] * 3  # 148 two-item users / 64 a batch
    evals = log.dropna(subset=["valid_ndcg@5"])["epoch"].tolist()
    assert evals == list(range(t["epochs_run"] + 1))
    # the item table the ID teachers read: the model's scoring rows, in items.parquet order
    items = pd.read_parquet(paths["item_table"])
    net, blob = load_sasrec(run["out"]["model"], items)
    table = torch.load(run["out"]["table"], weights_only=False)
    assert table["item_ids"] == items["item_id"].tolist()
    assert torch.equal(table["table"], net.item.weight[1:].detach())
    with pytest.raises(ValueError, match="other items"):
        load_sasrec(run["out"]["model"], items.iloc[::-1])


def test_validation_follows_the_primary_protocol():
    """The same training with early stopping on full ranking and on the sampled candidates:
    the first evaluation (the untrained model) already differs, as full ranking is harder."""
    samples, inter, items = walk_world(60)
    p = replace(SMALL, epochs=2)
    logs = [train(samples, inter, items, p, primary)[1] for primary in ("full", "sampled")]
    first = [float(lg["valid_ndcg@5"].iloc[0]) for lg in logs]
    assert first[0] < first[1]
    with pytest.raises(ValueError, match="eval.primary"):
        train(samples, inter, items, p, "both")


def test_same_seed_same_scores_other_seed_other_scores():
    samples, inter, items = walk_world(60)
    p = replace(SMALL, epochs=4)
    runs = [train(samples, inter, items, q)[0].item.weight for q in (p, p, replace(p, seed=1))]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, monkeypatch):
    samples, inter, items = walk_world(60)
    p = replace(SMALL, epochs=2, batch_size=16, checkpoint_every=2)  # 4 steps an epoch
    ckpt = tmp_path / "checkpoints"
    plain, plain_log = train(samples, inter, items, p)
    calls = {"n": 0}
    real_loss = SasrecTask.loss

    def dying_loss(self, idx):
        calls["n"] += 1
        if calls["n"] == 4:  # in step 4, after the checkpoint of step 2
            raise KeyboardInterrupt
        return real_loss(self, idx)

    monkeypatch.setattr(SasrecTask, "loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        train(samples, inter, items, p, ckpt_dir=ckpt, fingerprint="walk")
    assert sorted(f.name for f in ckpt.iterdir()) == ["step0000002.pt"]
    monkeypatch.setattr(SasrecTask, "loss", real_loss)
    resumed, resumed_log = train(samples, inter, items, p, ckpt_dir=ckpt, fingerprint="walk")
    assert torch.equal(resumed.item.weight, plain.item.weight)
    pd.testing.assert_frame_equal(resumed_log, plain_log)
    assert not ckpt.exists()  # cleared after a finished run


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
