"""config/amazon.yaml: the real Magazine category through the download rule, from the mirror,
and on through the whole DAG (teacher, scores, students, evaluation, report) with the smoke
settings (tiny random teacher) so that it fits in CI, with the hybrid teacher (title tokens and
ID tokens of real items: ``config/smoke_hybrid.yaml``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tests.conftest import copy_workflow, run_snakemake


@pytest.fixture(scope="module")
def amazon_run(tmp_path_factory, shared_data):
    work = copy_workflow(tmp_path_factory.mktemp("amazon"))
    mirror = shared_data / "amazon2018" / "Magazine_Subscriptions"
    res = run_snakemake(
        work,
        "all",
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
        "config/amazon.yaml",
        "config/smoke_hybrid.yaml",
        "--config",
        f"data={{mirror: {mirror}}}",
        label="amazon.yaml with smoke settings (--cores 2)",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work


@pytest.mark.slow
def test_amazon_config_fetches_from_mirror_and_prepares(amazon_run):
    manifest = json.loads((amazon_run / "data/raw/magazine/MANIFEST.json").read_text())
    assert {f["source"] for f in manifest["files"]} == {"mirror"}
    assert all(f["verified"] for f in manifest["files"])  # the published sha256 were checked
    stats = json.loads((amazon_run / "data/processed/magazine/stats.json").read_text())
    assert stats["load"]["items"]["titles_junk"] == 2163
    samples = pd.read_parquet(amazon_run / "data/processed/magazine/samples.parquet")
    test = samples[samples["split"] == "test"]
    assert len(test) == stats["users"]
    for hist, target, cand in zip(test["history"], test["target"], test["candidates"], strict=True):
        assert target not in hist and cand[0] == target and target not in cand[1:]


@pytest.mark.slow
def test_amazon_config_runs_the_whole_pipeline_on_the_real_category(amazon_run):
    res = amazon_run / "results" / "magazine"
    stats = json.loads((amazon_run / "data/processed/magazine/stats.json").read_text())
    summary = pd.read_csv(res / "report" / "summary.csv")
    models = set(summary["model"])
    assert {"teacher", "random", "popular"} <= models
    assert any(m.startswith("student/") for m in models)
    assert summary["ndcg@5"].between(0, 1).all() and summary["mrr"].between(0, 1).all()
    fisher = json.loads((res / "scores" / "fisher.json").read_text())
    assert len(set(fisher["raw"])) == fisher["n_layers"]  # measured on the real samples
    evals = [json.loads(p.read_text()) for p in res.glob("eval/**/*.json")]
    # one row per model (a student's seeds pooled into one), whatever the selections
    pooled = {e["model"].rsplit("__s", 1)[0] if e["kind"] == "student" else e["model"] for e in evals}
    assert len(pooled) == summary["model"].nunique()
    assert {e["n_users"] for e in evals} == {stats["users"]}  # every model on every test user
    assert len({e["candidates_sha256"] for e in evals}) == 1  # same candidates for every model


@pytest.mark.slow
def test_amazon_hybrid_teacher_reads_titles_and_item_tokens(amazon_run):
    from safetensors.torch import load_file

    res = amazon_run / "results" / "magazine"
    md = (res / "report" / "summary.md").read_text()
    assert md.splitlines()[0] == "# layerkd summary: magazine (teacher items: hybrid)"
    heads = load_file(res / "teacher" / "final" / "heads.safetensors")
    assert {"item_proj.weight", "item_in.weight", "item_table"} <= set(heads)  # text + table
    sasrec = torch.load(res / "sasrec" / "item_table.pt", weights_only=False)
    assert torch.equal(heads["item_table"], sasrec["table"])  # item_table: frozen (the default)
