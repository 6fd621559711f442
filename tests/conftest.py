"""Shared test setup: offline hub, deterministic torch threads, shared-data location."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.workflow_times import TIMES as WORKFLOW_TIMES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def one_thread():
    """torch on one thread for the test (bitwise-reproducible CPU results), restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real Amazon files; skip the test when they are not present."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real Amazon files not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA


def copy_workflow(dest: Path) -> Path:
    """Copy what a workflow run needs (Snakefile, rules, scripts, config) into ``dest``."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "Snakefile", dest / "Snakefile")
    for name in ("rules", "scripts", "config", "envs", "report"):
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, dest / name)
    return dest


def run_snakemake(
    workdir: Path, *args: str, timeout: int = 900, label: str | None = None
) -> subprocess.CompletedProcess:
    """Run this environment's Snakemake in ``workdir`` (a real subprocess); with ``label`` its
    wall time is reported in the test session summary (a figure, not an assertion)."""
    import sys
    import time

    snakemake = Path(sys.executable).parent / "snakemake"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.monotonic()
    res = subprocess.run(
        [str(snakemake), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if label is not None and res.returncode == 0:
        WORKFLOW_TIMES[label] = time.monotonic() - start
    return res


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the wall time of each labelled workflow run (e.g. the smoke run's 2-minute budget)."""
    for label, seconds in WORKFLOW_TIMES.items():
        terminalreporter.write_line(f"workflow wall time: {label}: {seconds:.0f} s")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The smoke workflow run once per test session in a copy of the workflow; its directory."""
    work = copy_workflow(tmp_path_factory.mktemp("smoke"))
    res = run_snakemake(
        work, "--cores", "2", "--configfile", "config/smoke.yaml", label="smoke (--cores 2)"
    )
    if res.returncode != 0:
        raise AssertionError(f"smoke workflow failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return work
