"""The GPU-sized config (config/llama3_8b.yaml) and the conda environments: the config validates,
the SLURM profile and the config together plan the full DAG with `snakemake -n` (nothing runs,
nothing is downloaded), and envs/*.yaml pin exactly what pyproject.toml pins.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = REPO_ROOT / "config" / "llama3_8b.yaml"
# Categories of the Amazon Reviews 2023 release (file names {Category}.jsonl.gz).
AMAZON_2023 = {
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Baby_Products", "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics",
    "Gift_Cards", "Grocery_and_Gourmet_Food", "Handmade_Products", "Health_and_Household",
    "Health_and_Personal_Care", "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store",
    "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products",
    "Patio_Lawn_and_Garden", "Pet_Supplies", "Software", "Sports_and_Outdoors",
    "Subscription_Boxes", "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games",
}  # fmt: skip


def test_llama3_config_is_valid_and_gpu_sized():
    from layerkd.config import check_config, validate_config

    config = yaml.safe_load(CONFIG.read_text())
    schema = yaml.safe_load((REPO_ROOT / "config" / "schema.yaml").read_text())
    jsonschema.validate(config, schema)
    check_config(validate_config(config))
    teacher = config["teacher"]
    assert teacher["model"] == "meta-llama/Meta-Llama-3-8B"
    assert teacher["device"] == "cuda" and teacher["shards"] >= 2
    if "dtype" in schema["properties"]["teacher"]["properties"]:
        assert teacher["dtype"] == "bf16"
    assert config["selection"]["k"] == 8 < 32  # Llama-3-8B has 32 decoder layers
    for ds in config["datasets"]:
        assert ds["source"] == "amazon2023" and ds["category"] in AMAZON_2023


@pytest.mark.skipif(
    not any(
        (Path(p) / "snakemake_executor_plugin_slurm").is_dir()
        for p in sys.path
        if p and Path(p).is_dir()
    ),
    reason="snakemake-executor-plugin-slurm==2.8.0 is not installed (the profile needs it)",
)
def test_llama3_config_with_slurm_profile_plans_the_full_dag():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-n",
            "--profile",
            "profiles/slurm",
            "--configfile",
            str(CONFIG),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    table = out.split("Job stats:", 1)[1]
    jobs = {r: int(n) for r, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)}
    config = yaml.safe_load(CONFIG.read_text())
    shards = config["teacher"]["shards"]
    # everything up to the layer-set checkpoint is planned; students follow once it has run
    for rule in ("fetch_raw", "prepare_data", "prepare_teacher", "finetune_teacher", "merge_cache"):
        assert jobs.get(rule) == 1, (rule, jobs)
    assert jobs["teacher_cache"] == shards
    assert jobs["select"] >= len(config["methods"]) * len(config["strategies"])
    assert jobs["layersets"] == 1 and jobs["report"] == 1
    # GPU jobs carry the profile's request; nothing ran (dry run) and nothing was downloaded
    blocks = re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", out)
    gpu_blocks = [b for b in blocks if re.match(r"rule (finetune_teacher|teacher_cache):", b)]
    assert len(gpu_blocks) == 1 + shards
    for block in gpu_blocks:
        assert re.search(r"\bgpu=1\b", block) and re.search(r"\bruntime=\d+", block), block
    assert not (REPO_ROOT / "data" / "raw" / config["datasets"][0]["name"]).exists()


def _pins(specs: list[str]) -> dict[str, str]:
    pins = {}
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;#]+)", spec.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _env_pins(path: Path) -> tuple[dict[str, str], list]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins([s for s in pip if isinstance(s, str)]), env["dependencies"]


def test_conda_envs_pin_what_pyproject_pins():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins(project["dependencies"])
    extras = {k: v for deps in project.get("optional-dependencies", {}).values() for k, v in
              _pins(deps).items()}  # fmt: skip
    assert runtime, "pyproject.toml pins its dependencies"
    python = re.search(r">=\s*(3\.\d+)", project["requires-python"]).group(1)

    rules_env, deps = _env_pins(REPO_ROOT / "envs" / "layerkd.yaml")
    assert rules_env == runtime, "envs/layerkd.yaml must pin exactly [project.dependencies]"
    assert f"python={python}" in deps

    driver, deps = _env_pins(REPO_ROOT / "envs" / "workflow.yaml")
    assert f"python={python}" in deps
    for name, version in runtime.items():
        assert driver.get(name) == version, f"envs/workflow.yaml: {name}=={version}"
    for name, version in driver.items():
        if name in extras:
            assert extras[name] == version, f"envs/workflow.yaml {name} differs from pyproject"
    assert driver["dvc"] == "3.67.1" and driver["snakemake-executor-plugin-slurm"] == "2.8.0"
    # the rules' env installs the package itself after creation (Snakemake copies env files,
    # so a relative `-e ..` in the env file would point into .snakemake/conda)
    deploy = REPO_ROOT / "envs" / "layerkd.post-deploy.sh"
    assert os.access(deploy, os.X_OK) and "--editable ." in deploy.read_text()
