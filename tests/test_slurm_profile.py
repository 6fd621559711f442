"""profiles/slurm: valid for the pinned executor plugin, GPU rules sized, and the smoke workflow
run through it on a real SLURM cluster (`bash .ci/slurm.sh` starts a single-node one, runs this
file and stops it), with the teacher cache split into separate SLURM jobs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = REPO_ROOT / "profiles" / "slurm"
PLUGIN_VERSION = "2.8.0"
GPU_RULES = {
    "prepare_teacher",
    "finetune_teacher",
    "teacher_cache",
    "ablation",
    "greedy",
    "screen",
    "distill",
    "evaluate_teacher",
    "evaluate_student",
}
SMOKE = ("--configfile", "config/smoke.yaml", "config/smoke_slurm.yaml")
# What this single-node cluster needs beyond the profile (site-specific keys, see the profile).
SINGLE_NODE = (
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
)


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


@pytest.fixture(scope="module")
def plugin():
    from importlib.metadata import PackageNotFoundError, version

    try:
        got = version("snakemake-executor-plugin-slurm")
    except PackageNotFoundError:
        pytest.skip(f"snakemake-executor-plugin-slurm=={PLUGIN_VERSION} is not installed")
    assert got == PLUGIN_VERSION, f"the profile is written for plugin {PLUGIN_VERSION}, got {got}"


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(workdir / "src"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def clean_copy(dest: Path) -> Path:
    """The working tree as a fresh clone has it (tracked and unignored files): no .snakemake/."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        if (REPO_ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, dest / rel)
    return dest


def planned_jobs(output: str) -> dict[str, int]:
    """The dry run's job-stats table: rule -> count."""
    table = output.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)\s*$", table, re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def test_profile_uses_only_known_options_and_sizes_gpu_rules(plugin):
    prof = profile()
    assert prof["executor"] == "slurm"
    help_text = subprocess.run(
        [str(BIN / "snakemake"), "--help"], capture_output=True, text=True, timeout=120
    ).stdout
    for key in prof:
        assert f"--{key}" in help_text, f"profile key {key!r} is no snakemake option"
    defaults = prof["default-resources"]
    assert defaults["mem_mb"] > 0 and defaults["runtime"] > 0
    sized = prof["set-resources"]
    assert GPU_RULES <= set(sized), f"GPU rules without resources: {GPU_RULES - set(sized)}"
    for rule in GPU_RULES:
        res = sized[rule]
        assert res["gpu"] >= 1 and res["mem_mb"] >= 16000 and res["runtime"] >= 30, rule
    for rule, res in sized.items():
        if rule not in GPU_RULES:
            assert "gpu" not in res, f"{rule} is CPU-only"
    # site-specific keys stay commented: nothing here names a partition, account or node
    text = (PROFILE / "config.yaml").read_text()
    live = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    for key in ("slurm_partition", "slurm_account", "slurm-no-account", "constraint"):
        assert not any(key in ln.split("#")[0] for ln in live), f"{key} must be commented"


def test_profile_rules_exist_and_smoke_plan_shards_the_cache(plugin, tmp_path):
    work = clean_copy(tmp_path)
    res = snakemake(work, "-n", "--profile", str(PROFILE), *SMOKE)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    jobs = planned_jobs(out)
    assert jobs["teacher_cache"] == 2 and jobs["merge_cache"] == 1, jobs
    # every sized rule is a rule of the workflow
    listed = set(snakemake(work, "--list-rules", *SMOKE).stdout.split())
    assert set(profile()["set-resources"]) <= listed, set(profile()["set-resources"]) - listed
    # the GPU rules' jobs carry the profile's GPU and memory requests (sized from layerkd.plan)
    sized = profile()["set-resources"]
    blocks = re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", out)
    for block in blocks:
        name = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if name and name.group(1) in {"prepare_teacher", "teacher_cache"}:
            assert re.search(r"resources:.*\bgpu=1\b", block, re.S), block
            assert re.search(rf"\bmem_mb={sized[name.group(1)]['mem_mb']}\b", block), block


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        ).stdout.split()
    except subprocess.TimeoutExpired:
        return False
    return "idle" in states or "mixed" in states


@pytest.mark.slow
def test_smoke_workflow_through_slurm_runs_shards_as_separate_jobs(plugin, tmp_path):
    if not _slurm_up():
        if os.environ.get("LAYERKD_SLURM_CLUSTER"):
            pytest.fail("LAYERKD_SLURM_CLUSTER is set but no SLURM node answers idle")
        pytest.skip("no SLURM cluster answers (bash .ci/slurm.sh starts a single-node one)")
    work = clean_copy(tmp_path)
    t0 = time.monotonic()
    res = snakemake(work, "--profile", str(PROFILE), *SMOKE, *SINGLE_NODE, timeout=1500)
    wall = time.monotonic() - t0
    out = res.stdout + res.stderr
    print(f"\nsmoke workflow through SLURM: {wall:.0f} s")
    assert res.returncode == 0, out[-6000:]
    assert (work / "results" / "smoke" / "report" / "summary.csv").is_file()

    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    listing = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30
    ).stdout
    jobs = [
        dict(re.findall(r"(\w+)=(\S*)", line))
        for line in listing.splitlines()
        if f"JobName={run_id}" in line
    ]
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", job["Comment"]).group(1)
        by_rule.setdefault(rule, []).append(job)
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [
        (j["JobId"], j["JobState"]) for j in jobs
    ]
    # one SLURM job per Snakemake job: the two cache shards are two jobs, with two SLURM ids
    shards = by_rule["teacher_cache"]
    assert len(shards) == 2 and len({j["JobId"] for j in shards}) == 2
    assert sorted(j["Comment"] for j in shards) == [
        "rule_teacher_cache_wildcards_smoke_0",
        "rule_teacher_cache_wildcards_smoke_1",
    ]
    # GPU rules were submitted with the profile's GPU request; CPU rules without
    for rule, rule_jobs in by_rule.items():
        for job in rule_jobs:
            has_gpu = "gpu" in job.get("TresPerJob", "") + job.get("TresPerNode", "")
            assert has_gpu == (rule in GPU_RULES), (rule, job.get("TresPerJob"))
    submitted: dict[str, int] = {}  # "rule X:" = a SLURM job; "localrule X:" ran in the driver
    for rule in re.findall(r"^(?:rule|checkpoint) (\w+):$", out, re.M):
        submitted[rule] = submitted.get(rule, 0) + 1
    assert {r: len(js) for r, js in by_rule.items()} == submitted
