"""The whole DAG with an E4SRec-style teacher (``teacher.items: ids``; the ``text`` mode is the
smoke run of tests/test_workflow.py, ``hybrid`` the real-category run of
tests/data/test_amazon_config.py): a real Snakemake subprocess on the smoke settings."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import copy_workflow, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ids_run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("smoke_ids"))
    res = run_snakemake(
        work,
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
        "config/smoke_ids.yaml",
        label="smoke, teacher.items ids (--cores 2)",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work / "results" / "smoke"


def test_ids_teacher_reads_the_sasrec_table_and_trains_it(ids_run):
    sasrec = torch.load(ids_run / "sasrec" / "item_table.pt", weights_only=False)
    feats = torch.load(ids_run / "teacher" / "item_features.pt", weights_only=False)
    assert feats["items"] == "ids" and feats["features"].shape == (len(sasrec["item_ids"]), 0)
    assert torch.equal(feats["table"], sasrec["table"])  # what prepare_teacher read
    heads = load_file(ids_run / "teacher" / "final" / "heads.safetensors")
    assert heads["item_table"].shape == sasrec["table"].shape
    assert not torch.equal(heads["item_table"], sasrec["table"])  # item_table: trainable
    assert "item_proj.weight" not in heads and "item_in.weight" in heads
    meta = json.loads((ids_run / "teacher" / "final" / "layerkd.json").read_text())
    assert meta["dims"]["items"] == "ids" and meta["dims"]["item_table"] == "trainable"
    log = pd.read_parquet(ids_run / "teacher" / "finetune_log.parquet")
    assert log["valid_ndcg@5"].dropna().nunique() > 1  # LoRA on the MLP moved the model


def test_ids_students_inherit_table_and_slot_projection(ids_run):
    students = sorted(ids_run.glob("students/*/final"))
    assert {p.parent.name.split("__")[1] for p in students} == {"keep", "compact"}
    for final in students:
        heads = load_file(final / "heads.safetensors")
        hidden = json.loads((final / "config.json").read_text())["hidden_size"]
        assert heads["item_in.weight"].shape[0] == hidden, final  # slots in the student's width
        assert heads["item_table"].shape[1] == heads["item_in.weight"].shape[1]


def test_ids_report_names_the_mode_and_ranks_on_both_protocols(ids_run):
    md = (ids_run / "report" / "summary.md").read_text()
    assert md.splitlines()[0] == "# layerkd summary: smoke (teacher items: ids)"
    summary = pd.read_csv(ids_run / "report" / "summary.csv")
    llm = summary[summary["kind"].isin(["teacher", "student"])]
    assert (
        set(llm["items"]) == {"ids"}
        and summary[summary["kind"] == "reference"]["items"].isna().all()
    )
    assert {"teacher", "sasrec", "popular"} <= set(summary["model"])
    for p in ids_run.glob("eval/**/*.json"):
        rec = json.loads(p.read_text())
        assert "full" in rec and 0 <= rec["full"]["metrics"]["ndcg@5"] <= 1, p
    hyps = json.loads((ids_run / "report" / "hypotheses.json").read_text())
    assert [h["key"] for h in hyps] == ["T", "R", "H1", "H2", "H3", "S"]
