"""Bad configuration stops Snakemake before any work, with a message naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from layerkd.config import (
    ConfigError,
    check_config,
    load_config,
    screen_distill_settings,
    selection_names,
    teacher_layers,
)

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def _base() -> dict:
    """The default config as Snakemake runs it: validated, every schema default filled in."""
    return load_config(REPO / "config" / "config.yaml")


def _dry_run(tmp_path: Path, overlay: dict) -> subprocess.CompletedProcess:
    cfg = tmp_path / "overlay.yaml"
    cfg.write_text(yaml.safe_dump(overlay))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(SNAKEMAKE), "-n", "--cores", "1", "--configfile", str(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("overlay", "needle"),
    [
        ({"teacher": {"model": "tiny-random", "bogus_key": 1}}, "bogus_key"),
        ({"methods": ["fisher", "magic"]}, "magic"),
        ({"selection": {"k": 30}}, "selection.k=30"),
        ({"distill": {"epochs": 0}}, "epochs"),
        ({"strategies": ["top_k", "block"]}, "block"),  # a baseline now: none__block, once
        ({"eval": {"protocol": ["sampled"]}}, "eval.primary"),  # full is primary by default
    ],
)
def test_snakemake_refuses_bad_config_naming_the_key(tmp_path, overlay, needle):
    res = _dry_run(tmp_path, overlay)
    assert res.returncode != 0
    assert needle in res.stdout + res.stderr


def test_default_config_plans_the_dag(tmp_path):
    res = _dry_run(tmp_path, {})
    assert res.returncode == 0, res.stderr[-2000:]


def test_check_config_rules():
    cfg = _base()
    assert teacher_layers(cfg["teacher"]) == 30
    check_config(cfg)
    cfg["strategies"] = ["strategic"]
    cfg["selection"]["k"] = 1
    with pytest.raises(ConfigError, match="k >= 2"):
        check_config(cfg)
    cfg = _base()
    cfg["teacher"] = {**cfg["teacher"], "model": "tiny-random", "tiny": {"num_layers": 4}}
    with pytest.raises(ConfigError, match="4 layers"):
        check_config(cfg)


def test_selection_names_include_random_repeats():
    cfg = _base()
    cfg["methods"], cfg["strategies"] = ["fisher", "gradient"], ["top_k"]
    cfg["baselines"] = ["first_k", "random"]
    cfg["selection"]["random_repeats"] = 2
    cfg["selection"]["k"] = 8
    assert selection_names(cfg) == [
        "fisher__top_k__k8",
        "gradient__top_k__k8",
        "none__first_k__k8",
        "none__random-0__k8",
        "none__random-1__k8",
    ]
    cfg["selection"]["k"] = [4, 8]
    cfg["baselines"] = ["uniform"]
    assert selection_names(cfg) == [
        "fisher__top_k__k4",
        "gradient__top_k__k4",
        "none__uniform__k4",
        "fisher__top_k__k8",
        "gradient__top_k__k8",
        "none__uniform__k8",
    ]


def test_distill_subset_selects_pairs_across_k_and_repeats():
    from layerkd.config import distilled_names

    cfg = _base()
    cfg["methods"], cfg["strategies"] = ["fisher", "ablation"], ["top_k", "hybrid"]
    cfg["baselines"] = ["first_k", "random"]
    cfg["selection"].update({"k": [4, 8], "random_repeats": 2})
    cfg["selection"]["distill"] = ["fisher__top_k", "none__random"]
    check_config(cfg)
    assert distilled_names(cfg) == [
        "fisher__top_k__k4",
        "none__random-0__k4",
        "none__random-1__k4",
        "fisher__top_k__k8",
        "none__random-0__k8",
        "none__random-1__k8",
    ]
    cfg["selection"]["distill"] = ["attention__top_k"]
    with pytest.raises(ConfigError, match="selection.distill"):
        check_config(cfg)


def test_block_is_one_score_free_selection():
    """``block`` reads angular distances, not a method's scores: one ``none__block`` selection,
    never one per method."""
    names = selection_names(_base())
    assert [n for n in names if "__block__" in n] == ["none__block__k8"]


def test_an_init_only_screen_depends_on_no_training_setting():
    cfg = _base()
    assert cfg["selection"]["screen"]["steps"] == 0
    init = screen_distill_settings(cfg)
    cfg["distill"].update(lr=0.05, epochs=9, w_kd=0.5)
    assert screen_distill_settings(cfg) == init
    cfg["distill"]["valid_samples"] = 7
    assert screen_distill_settings(cfg)["valid_samples"] == 7
    cfg["selection"]["screen"]["steps"] = 8  # a training screen reads every setting but seeds
    trained = screen_distill_settings(cfg)
    assert trained["lr"] == 0.05 and "seeds" not in trained
    assert set(trained) == set(cfg["distill"]) - {"seeds"}
