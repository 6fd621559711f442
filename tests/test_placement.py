"""Every torch step runs where the config says: a dry load of the workflow (Snakemake's own API,
in a subprocess) shows each rule whose stage function takes a device receiving the configured
device, dtype and device map: ``cuda``/``bf16`` for config/llama3_8b.yaml, ``cpu``/``fp32`` by
default."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings import types as t
configfiles = [Path(p) for p in sys.argv[1:]]
with SnakemakeApi(t.OutputSettings()) as api:
    wf = api.workflow(
        resource_settings=t.ResourceSettings(cores=1),
        config_settings=t.ConfigSettings(configfiles=configfiles),
        storage_settings=t.StorageSettings(),
        snakefile=Path("Snakefile"),
        workdir=Path("."),
    )
    out = {}
    for rule in wf._workflow.rules:
        params = dict(rule.params.items())
        out[rule.name] = {k: params.get(k, "<absent>") for k in ("device", "dtype", "device_map")}
print("PARAMS=" + json.dumps(out))
"""


def rule_params(*configfiles: str) -> dict[str, dict[str, str | None]]:
    """device/dtype/device_map params of every rule, as Snakemake builds them."""
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *configfiles],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("PARAMS="))
    return json.loads(line[len("PARAMS=") :])


def torch_rules() -> set[str]:
    """Rules whose stage function (the one its script calls) takes a ``device``."""
    import importlib

    found = set()
    for script in (REPO / "scripts").glob("*.py"):
        tree = ast.parse(script.read_text())
        imp = next(
            n for n in tree.body if isinstance(n, ast.ImportFrom) and "runtime" not in n.module
        )
        fn = getattr(importlib.import_module(imp.module), imp.names[0].name)
        if "device" in inspect.signature(fn).parameters:
            found.add(script.stem)
    return found


RULE_OF_SCRIPT = {"evaluate": ("evaluate_teacher", "evaluate_student")}


@pytest.mark.parametrize(
    ("configs", "device", "dtype"),
    [(["config/llama3_8b.yaml"], "cuda", "bf16"), ([], "cpu", "fp32")],
)
def test_every_torch_rule_gets_the_configured_placement(configs, device, dtype):
    params = rule_params(*configs)
    rules = {r for s in torch_rules() for r in RULE_OF_SCRIPT.get(s, (s,))}
    assert {"finetune_teacher", "teacher_cache", "distill", "evaluate_student"} <= rules
    for rule in sorted(rules):
        assert params[rule]["device"] == device, (rule, params[rule])
        assert params[rule]["dtype"] == dtype, (rule, params[rule])
        assert params[rule]["device_map"] != "<absent>", rule
    # every other rule runs no torch model on a device
    for rule in set(params) - rules:
        assert params[rule]["device"] == "<absent>", rule
