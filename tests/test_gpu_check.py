"""benchmarks/gpu_check.py: its ``--tiny`` run (the same code path as on the GPU, on CPU) as a
real subprocess writes one JSON with every section measured; the out-of-memory fallback halves
the batch. Only the JSON's shape and finiteness are checked: no timed assertions."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"
#: section -> keys that must hold finite positive numbers
POSITIVE = {
    "teacher_pass": ("samples", "batch_size", "tokens", "seconds", "tokens_per_s",
                     "tflops_per_s", "mfu", "peak_memory_gb", "plan_memory_gb", "wall_s"),
    "lora_step": ("batch_size", "tokens", "seconds", "tokens_per_s", "tflops_per_s", "mfu",
                  "peak_memory_gb", "trainable_params", "loss", "wall_s"),
    "lora_step_fp32": ("batch_size", "tokens", "seconds", "tokens_per_s", "mfu",
                       "peak_memory_gb", "plan_memory_gb", "wall_s"),
    "speed": ("batch_size", "latency_speedup", "throughput_speedup", "wall_s"),
    "device": ("peak_tflops", "fp32_peak_tflops", "measured_matmul_tflops"),
}  # fmt: skip
MODEL_SPEED = ("latency_ms_b1", "throughput_users_s", "params", "peak_memory_gb")


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        math.isfinite(value) and value > 0
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "tmp.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(out.read_text())


def test_tiny_run_writes_every_section_with_finite_positive_numbers(tiny_check):
    for section, keys in POSITIVE.items():
        got = tiny_check[section]
        assert "error" not in got and "skipped" not in got, got
        bad = {k: got.get(k) for k in keys if not positive(got.get(k))}
        assert bad == {}, (section, bad)
    for model in ("teacher", "student"):
        speed = tiny_check["speed"][model]
        assert all(positive(speed[k]) for k in MODEL_SPEED), speed
    # the student keeps selection.k layers of the teacher, evenly spaced
    k = tiny_check["settings"]["k"]
    assert len(tiny_check["speed"]["layers"]) == k
    assert tiny_check["speed"]["student"]["params"] < tiny_check["speed"]["teacher"]["params"]
    assert tiny_check["lora_step"]["oom_batch_sizes"] == []
    assert tiny_check["lora_step_fp32"]["base_dtype"] == "torch.float32"


def test_tiny_run_records_versions_device_and_settings(tiny_check):
    versions = tiny_check["versions"]
    assert versions["torch"] == torch.__version__ and versions["transformers"] and versions["peft"]
    assert tiny_check["device"]["type"] == "cpu" and tiny_check["device"]["name"]
    settings = tiny_check["settings"]
    assert settings["tiny"] is True and settings["shape"]["layers"] == 4
    assert settings["max_prompt_tokens"] == 32 and settings["samples"] == 6
    assert positive(tiny_check["build_s"]) and positive(tiny_check["wall_s"])


def test_out_of_memory_halves_the_batch():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.build(module.TINY_SHAPE, torch.device("cpu"), torch.float32, 10, 8)

    def run(batch: int) -> str:
        if batch > 4:
            raise torch.cuda.OutOfMemoryError(f"batch {batch} does not fit")
        return f"ran {batch}"

    assert module.halving(run, 32, model) == (4, [32, 16, 8], "ran 4")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        module.halving(lambda b: run(b + 8), 2, model)


def test_tiny_run_in_ids_mode_uses_item_slots_and_mlp_adapters(tmp_path):
    """config/slmrec.yaml: the E4SRec teacher's prompts (instruction + item slots) and LoRA on
    the MLP projections, through the same sections."""
    out = tmp_path / "ids.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    files = [str(REPO_ROOT / "config" / n) for n in ("llama3_8b.yaml", "slmrec.yaml")]
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--configfile", *files],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got = json.loads(out.read_text())
    settings = got["settings"]
    assert settings["teacher_items"] == "ids" and settings["loss"] == "full"
    assert settings["lora_targets"] == ["gate_proj", "up_proj", "down_proj"]
    for section in ("teacher_pass", "lora_step", "speed"):
        assert "error" not in got[section], got[section]
    assert got["lora_step"]["tokens"] == got["lora_step"]["batch_size"] * settings["prompt_tokens"]
    assert positive(got["lora_step"]["loss"])
