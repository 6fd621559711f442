"""The SASRec reference row (:mod:`layerkd.models.sasrec`), trained and scored on the same
splits and test candidates as every LLM model, in two stages:

* ``train_sasrec`` trains it through the one loop (:func:`~layerkd.models.fit.fit`) on each
  user's chronological items of :func:`~layerkd.evaluation.reference.training_interactions`
  (interactions minus every valid/test target; the last ``max_len + 1`` of them give inputs
  ``s[:-1]`` and targets ``s[1:]``), early-stopping on the *select* half of the validation users
  under ``eval.primary``'s protocol, as the teacher does; it writes the model, the training log
  and the learned item table that the ID modes of ``teacher.items`` read.
* ``evaluate_sasrec`` scores the test users: validation input is the training sequence, test
  input the training sequence + the valid target (both their last ``max_len`` items); with
  ``full`` in ``eval.protocol`` the target is also ranked against every item but the user's
  earlier ones, as for every other model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from layerkd.evaluation.full import full_record, seen_items
from layerkd.evaluation.reference import (
    candidates_digest,
    eval_record,
    test_rows,
    training_interactions,
)
from layerkd.io import save_torch, write_json, write_parquet
from layerkd.models.checkpoint import file_digest
from layerkd.models.checkpoint import fingerprint as run_fingerprint
from layerkd.models.fit import fit
from layerkd.models.samples import half_rows, item_index
from layerkd.models.sasrec import SASRec, SasrecParams, SasrecTask, pad_left
from layerkd.records import Record

log = logging.getLogger(__name__)


def sasrec_index(items: pd.DataFrame) -> dict[str, int]:
    """Item id -> SASRec index: the row in ``items.parquet`` + 1 (0 is padding)."""
    return {item: row + 1 for item, row in item_index(items).items()}


def user_sequences(
    samples: pd.DataFrame, interactions: pd.DataFrame, index: dict[str, int]
) -> dict[str, list[int]]:
    """Each user's chronological training items as indices (valid/test targets excluded); ties
    in time keep the order of ``interactions`` (prepare's (timestamp, item_id) tie-break)."""
    train = training_interactions(samples, interactions)
    train = train.assign(_u=train["user_id"].astype(str)).sort_values(
        ["_u", "timestamp"], kind="stable"
    )
    out: dict[str, list[int]] = {}
    for user, items in train.groupby("_u", sort=False)["item_id"]:
        out[str(user)] = [_idx(index, i) for i in items]
    return out


def _idx(index: dict[str, int], item: Any) -> int:
    try:
        return index[str(item)]
    except KeyError:
        raise ValueError(f"item {item!r} is not in items.parquet") from None


def split_inputs(
    frame: pd.DataFrame,
    split: str,
    seqs: dict[str, list[int]],
    index: dict[str, int],
    max_len: int,
    extra: dict[str, int] | None = None,
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(user ids, inputs (N, max_len), candidate indices (N, C), target in column 0) of the rows
    of ``split``; ``extra`` appends one item per user (the valid target for the test input)."""
    rows = frame[frame["split"] == split]
    users = rows["user_id"].astype(str).tolist()
    hist = [seqs.get(u, []) + ([extra[u]] if extra and u in extra else []) for u in users]
    cands = [[_idx(index, c) for c in cs] for cs in rows["candidates"]]
    cand = torch.tensor(cands, dtype=torch.long).reshape(len(users), -1)
    return users, pad_left(hist, max_len), cand


def train(
    full: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    p: SasrecParams,
    primary: str = "full",
    *,
    ckpt_dir: Path | None = None,
    fingerprint: str = "",
) -> tuple[SASRec, pd.DataFrame]:
    """SASRec trained on ``full`` (every split's training items) with early stopping on the
    select half's validation rows under ``primary`` (``sampled`` or ``full``): (the model with
    the best weights, the loop's log). With ``ckpt_dir`` and ``sasrec.checkpoint_every`` a
    killed run resumes from its last checkpoint of the same ``fingerprint``."""
    if primary not in ("sampled", "full"):
        raise ValueError(f"eval.primary={primary!r}: expected sampled or full")
    index = sasrec_index(items)
    seqs = user_sequences(full, interactions, index)
    select = half_rows(full, "select")
    _, inputs, cands = split_inputs(select, "valid", seqs, index, p.max_len)
    ranked = None
    if primary == "full":
        ranked = seen_items(select[select["split"] == "valid"], interactions, items)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.seed)
        model = SASRec(len(index), p)
        task = SasrecTask(model, list(seqs.values()), (inputs, cands), p.max_len, ranked)
        frame = fit(
            task, model, list(model.parameters()), len(task), p,
            ckpt_dir=ckpt_dir, fingerprint=fingerprint, desc="sasrec",
        )  # fmt: skip
    return model, frame


def training_summary(frame: pd.DataFrame, epochs: int) -> dict[str, Any]:
    """Best epoch, its validation NDCG@5, epochs run and whether it stopped early, from the
    loop's log (evaluation rows carry ``valid_ndcg@5``; epoch 0 is the untrained model)."""
    evals = frame.dropna(subset=["valid_ndcg@5"])
    best = evals.loc[evals["valid_ndcg@5"].idxmax()]
    run = int(frame["epoch"].max())
    return {
        "best_epoch": int(best["epoch"]),
        "best_valid_ndcg@5": float(best["valid_ndcg@5"]),
        "epochs_run": run,
        "stopped_early": run < epochs,
    }


def train_sasrec(
    *,
    samples: Path,
    interactions: Path,
    item_table: Path,
    model: Path,
    table: Path,
    train_log: Path,
    sasrec: dict[str, Any],
    primary: str,
) -> pd.DataFrame:
    """``train_sasrec``: train SASRec (``sasrec`` section; early stopping under ``eval.primary``;
    resumable from ``checkpoints/`` beside ``model`` when ``checkpoint_every`` is set) and write
    ``model`` (weights, settings, item ids, training summary), the loop's log
    ``train_log`` and ``table``: the learned item table (n_items, hidden) in ``items.parquet``
    order, which the ID modes of ``teacher.items`` read."""
    p = SasrecParams(**sasrec)
    full, items = pd.read_parquet(samples), pd.read_parquet(item_table)
    start = time.perf_counter()
    fp = run_fingerprint(file_digest(samples, interactions, item_table), primary)
    net, frame = train(
        full, pd.read_parquet(interactions), items, p, primary,
        ckpt_dir=Path(model).parent / "checkpoints", fingerprint=fp,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    summary = training_summary(frame, p.epochs)
    log.info(
        "SASRec: best epoch %d of %d, select-half valid NDCG@5 (%s) %.4f, %.1f s",
        summary["best_epoch"], summary["epochs_run"], primary, summary["best_valid_ndcg@5"],
        seconds,
    )  # fmt: skip
    save_torch(
        model,
        {
            "state_dict": net.state_dict(),
            "n_items": net.n_items,
            "settings": asdict(p),
            "item_ids": items["item_id"].astype(str).tolist(),
            "training": summary | {"primary": primary},
            "train_seconds": seconds,
        },
    )
    save_torch(table, learned_item_table(net, items))
    write_parquet(train_log, frame)
    return frame


def load_sasrec(path: Path, items: pd.DataFrame) -> tuple[SASRec, dict[str, Any]]:
    """The model ``train_sasrec`` wrote (in eval mode) and its saved record; it must have been
    trained on the items of ``items`` in the same order."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob["item_ids"] != items["item_id"].astype(str).tolist():
        raise ValueError(f"{path}: trained on other items than items.parquet lists")
    net = SASRec(blob["n_items"], SasrecParams(**blob["settings"]))
    net.load_state_dict(blob["state_dict"])
    return net.eval(), blob


def evaluate_sasrec(
    *,
    samples: Path,
    interactions: Path,
    item_table: Path,
    model: Path,
    train_log: Path,
    metrics: Path,
    evaluation: dict[str, Any],
) -> Record:
    """``evaluate_sasrec``: write ``eval/sasrec.json`` on the test users and candidates of every
    model (``evaluation`` is the ``eval`` section); with ``full`` in its ``protocol`` also on
    the whole catalogue (the user's earlier items excluded), as every other model."""
    bootstrap, seed = evaluation["bootstrap"], evaluation["seed"]
    full, items = pd.read_parquet(samples), pd.read_parquet(item_table)
    seen_table = pd.read_parquet(interactions)
    net, blob = load_sasrec(model, items)
    index = sasrec_index(items)
    seqs = user_sequences(full, seen_table, index)
    vt = full[full["split"] == "valid"]
    after = {str(u): _idx(index, t) for u, t in zip(vt["user_id"], vt["target"], strict=True)}
    frame = test_rows(full, evaluation["max_users"], seed)
    users, inputs, cands = split_inputs(frame, "test", seqs, index, net.pos.num_embeddings, after)
    scores = net.score(inputs, cands)
    history = pd.read_parquet(train_log).dropna(subset=["valid_ndcg@5"])
    extra: dict[str, Any] = {
        "params": int(sum(t.numel() for t in net.parameters())),
        "training": blob["training"],
        "train_log": history[["epoch", "step", "valid_ndcg@5"]].to_dict("records"),
        "train_seconds": blob["train_seconds"],
        "settings": blob["settings"],
    }
    if "full" in evaluation["protocol"]:
        test = frame[frame["split"] == "test"].reset_index(drop=True)
        targets, seen = seen_items(test, seen_table, items)  # indices = model index - 1
        ranks = net.full_ranks(inputs, targets, seen)
        extra["full"] = full_record(ranks, len(items), bootstrap=bootstrap, seed=seed)
    digest = candidates_digest(frame)
    rec = eval_record(
        "sasrec", "reference", scores, users, digest, bootstrap=bootstrap, seed=seed, extra=extra
    )
    log.info("SASRec test NDCG@5 %.4f on %d users", rec["metrics"]["ndcg@5"], len(users))
    if "full" in extra:
        log.info("SASRec full-ranking test NDCG@5 %.4f", extra["full"]["metrics"]["ndcg@5"])
    write_json(metrics, rec)
    return rec


def learned_item_table(model: SASRec, items: pd.DataFrame) -> dict[str, Any]:
    """The item vectors that score items (the tied embedding rows 1..n, ``items.parquet``
    order; row 0 is padding) with the item ids they belong to."""
    rows = model.item.weight[1:].detach().float().cpu().clone()
    return {"item_ids": items["item_id"].tolist(), "table": rows}
