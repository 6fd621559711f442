"""config/amazon.yaml: the real Magazine category through the download rule, from the mirror."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, copy_workflow, run_snakemake


@pytest.mark.slow
def test_amazon_config_fetches_from_mirror_and_prepares(tmp_path, shared_data):
    work = copy_workflow(tmp_path / "wf")
    mirror = shared_data / "amazon2018" / "Magazine_Subscriptions"
    res = run_snakemake(
        work,
        "data/processed/magazine/stats.json",
        "--cores",
        "1",
        "--configfile",
        "config/amazon.yaml",
        "--config",
        f"data={{mirror: {mirror}}}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((work / "data/raw/magazine/MANIFEST.json").read_text())
    assert {f["source"] for f in manifest["files"]} == {"mirror"}
    assert all(f["verified"] for f in manifest["files"])  # the published sha256 were checked
    stats = json.loads((work / "data/processed/magazine/stats.json").read_text())
    assert stats["load"]["items"]["titles_junk"] == 2163
    samples = pd.read_parquet(work / "data/processed/magazine/samples.parquet")
    test = samples[samples["split"] == "test"]
    assert len(test) == stats["users"]
    for hist, target, cand in zip(test["history"], test["target"], test["candidates"], strict=True):
        assert target not in hist and cand[0] == target and target not in cand[1:]
    assert (REPO_ROOT / "config" / "amazon.yaml").is_file()
