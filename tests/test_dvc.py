"""dvc.yaml wraps the Snakemake DAG without redeclaring it.

Fast: every Snakemake rule output is covered by exactly one DVC stage output (and every DVC output
is something a rule writes), each rule's upstream inputs are that stage's dependencies, and each
stage's command runs the phase its outputs belong to.

Slow (a real `dvc repro` of the smoke config in a clean copy of the repository): the first repro
runs every rule, a second does nothing, `dvc status` is clean, `dvc push`/`dvc pull` through the
local remote restores every output in a fresh clone, changing one parameter reruns only the rules
that read it, and the run's summary.json equals the one of an independent plain Snakemake run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=layerkd-tests", "-c", "user.email=tests@layerkd.invalid"]
RULE_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$", re.M)
TIMING = re.compile(r"latency|throughput|speedup|seconds|elapsed|_ms($|_)|time")

# Prints {"datasets": [...], "rules": {name: {"input": [...], "output": [...]}}} for the config
# files given as arguments. Input functions are skipped (they need the DAG); wildcard
# constraints are stripped from patterns.
RULES_DUMP = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import strip_wildcard_constraints
from snakemake.settings.types import ConfigSettings, ResourceSettings

with SnakemakeApi() as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path(p) for p in sys.argv[1:]]),
        snakefile=Path("Snakefile"),
    )
    w = wf._workflow
    rules = {
        r.name: {
            "input": [strip_wildcard_constraints(str(f)) for f in r.input if isinstance(f, str)],
            "output": [strip_wildcard_constraints(str(f)) for f in r.output],
        }
        for r in w.rules
    }
    print("RULES_JSON:" + json.dumps({"datasets": [d["name"] for d in w.config["datasets"]],
                                      "rules": rules}))
"""


def snakemake_rules(workdir: Path, *configfiles: str) -> dict[str, Any]:
    """The workflow's rules (static inputs and outputs) and datasets, from Snakemake itself."""
    res = subprocess.run(
        [sys.executable, "-c", RULES_DUMP, *configfiles],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RULES_JSON:")), None)
    assert line, f"could not load the workflow:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return json.loads(line[len("RULES_JSON:") :])


def dvc_stages(root: Path) -> dict[str, dict[str, Any]]:
    """Every resolved DVC stage (foreach expanded): cmd, outs (incl. metrics/plots), deps."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {
            s.name: {
                "cmd": s.cmd,
                "outs": [str(o.def_path) for o in s.outs],
                "metrics": [str(o.def_path) for o in s.outs if o.metric],
                "plots": [str(o.def_path) for o in s.outs if o.plot],
                "uncached": [str(o.def_path) for o in s.outs if not o.use_cache],
                "deps": [str(d.def_path) for d in s.deps],
                "params": sorted(k for d in s.deps if hasattr(d, "params") for k in d.params),
            }
            for s in repo.index.stages
        }


def _anchor(path: str) -> str:
    """The fixed part of a pattern: the whole path, or the part before its first wildcard."""
    return path.split("{", 1)[0] if "{" in path else path


#: rules over several datasets (results/datasets/): no per-dataset DVC phase writes them, and a
#: one-dataset config does not run them (dvc.yaml says so)
ACROSS_RULES = {"compare_datasets"}


def _covers(out: str, path: str) -> bool:
    """Whether DVC path ``out`` is ``path`` or a directory above it (``path`` may be a pattern)."""
    fixed = _anchor(path)
    if "{" not in path and fixed == out:
        return True
    return fixed.startswith(out.rstrip("/") + "/")


def _writes(output: str, path: str) -> bool:
    """Whether output pattern ``output`` (a file or a directory) produces input ``path``."""
    regex = "".join(
        "[^/]+" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", output)
    )
    concrete = re.sub(r"\{[^}]+\}", "X", path)
    return bool(re.fullmatch(regex, concrete) or re.match(regex + "/", concrete))


def rule_stages(rules: dict[str, Any], stages: dict[str, Any], dataset: str) -> dict[str, str]:
    """Map every rule to the one DVC stage whose outputs cover all of its outputs."""
    owner: dict[str, str] = {}
    for name, rule in rules.items():
        if name == "all" or name in ACROSS_RULES:
            continue
        for pattern in rule["output"]:
            path = pattern.replace("{dataset}", dataset)
            covering = [s for s, st in stages.items() for o in st["outs"] if _covers(o, path)]
            assert len(covering) == 1, f"rule {name} output {path}: covered by {covering}"
            assert owner.setdefault(name, covering[0]) == covering[0], (
                f"rule {name} writes into two stages: {owner[name]} and {covering[0]}"
            )
    return owner


@pytest.fixture(scope="module")
def dvc_api():
    pytest.importorskip("dvc", reason="dvc is not installed (pip install dvc==3.67.1)")


def test_dvc_outputs_agree_with_snakemake_rules(dvc_api):
    wf = snakemake_rules(REPO_ROOT)
    stages = dvc_stages(REPO_ROOT)
    rules = wf["rules"]
    for ds in wf["datasets"]:
        mine = {
            k: v
            for k, v in stages.items()
            if v["cmd"].startswith(f"snakemake results/{ds}/report/")
        }
        assert mine, f"no DVC stage runs dataset {ds}"
        owner = rule_stages(rules, mine, ds)
        assert set(owner) == set(rules) - {"all", *ACROSS_RULES}, "every rule belongs to a stage"
        # every DVC output is something a rule writes
        outputs = [p.replace("{dataset}", ds) for r in rules.values() for p in r["output"]]
        for name, st in mine.items():
            for out in st["outs"]:
                assert any(_covers(out, p) for p in outputs), f"{name}: {out} is no rule output"
        # a stage's --until rule is one of its own; the last stage runs the report rule
        for name, st in mine.items():
            until = re.search(r"--until ((?:\w+ ?)+)", st["cmd"])
            targets = until.group(1).split() if until else ["report"]
            for rule in targets:
                assert owner[rule] == name, f"{name} runs --until {rule}, a rule of {owner[rule]}"
        # an input written by another stage's rule is a dependency of the reading rule's stage
        for name, rule in rules.items():
            for pattern in rule["input"] if name not in ("all", *ACROSS_RULES) else []:
                path = pattern.replace("{dataset}", ds)
                writers = {
                    owner[r]
                    for r, other in rules.items()
                    if r != "all"
                    for p in other["output"]
                    if _writes(p.replace("{dataset}", ds), path)
                }
                for stage in writers - {owner[name]}:
                    deps = mine[owner[name]]["deps"]
                    assert any(_covers(d, path) for d in deps), (
                        f"rule {name} reads {path} (from {stage}) but {owner[name]} lacks the dep"
                    )
    # the summary JSON is a metric kept in git, the summary CSV a plot
    all_metrics = [m for st in stages.values() for m in st["metrics"]]
    assert all(m.endswith("report/summary.json") for m in all_metrics) and all_metrics
    assert all(m in st["uncached"] for st in stages.values() for m in st["metrics"])
    assert any(p.endswith("report/summary.csv") for st in stages.values() for p in st["plots"])


def test_dvc_stages_track_config_code_and_persist_outputs(dvc_api):
    spec = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    for name, stage in spec["stages"].items():
        body = stage["do"]
        # the whole file Snakemake reads: a key a phase does not use costs a no-op Snakemake call,
        # a key left out would let a later phase's Snakemake rerun this phase's rules
        assert body["params"] == [{"config/config.yaml": None}], f"stage {name}"
        for section in ("outs", "metrics", "plots"):
            for entry in body.get(section, []):
                ((path, flags),) = entry.items()
                assert flags.get("persist") is True, f"{name}: {path} must persist"
        for dep in ("Snakefile", "rules", "scripts", "src/layerkd", "config/schema.yaml"):
            assert dep in body["deps"], f"stage {name} lacks code dependency {dep}"
    remote = (REPO_ROOT / ".dvc" / "config").read_text()
    assert "remote = local" in remote and "analytics = false" in remote
    ignored = (REPO_ROOT / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored  # byte-code must not make code deps look changed


# ------------------------------------------------------------------------------------------------
# The audit: dvc repro of the smoke config in a clean clone.


def _deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def clean_clone(dest: Path) -> Path:
    """The working tree as a fresh clone has it: tracked and unignored files, a new git repo."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*GIT, "commit", "-qm", "clean clone"], cwd=dest, check=True)
    return dest


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the venv's snakemake
        "PYTHONPATH": str(root / "src"),  # the clone's package, not the editable install
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DVC_NO_ANALYTICS": "1",
    }


def sh(root: Path, *args: str, timeout: int = 1200, check: bool = True) -> str:
    res = subprocess.run(
        list(args), cwd=root, env=_env(root), capture_output=True, text=True, timeout=timeout
    )
    out = res.stdout + res.stderr
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {res.returncode}:\n{out[-6000:]}")
    return out


def dvc(root: Path, *args: str, **kw: Any) -> str:
    return sh(root, str(BIN / "dvc"), *args, **kw)


def ran_rules(output: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in RULE_LINE.findall(output):
        counts[name] = counts.get(name, 0) + 1
    return counts


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def comparable(summary: Any) -> str:
    """summary.json without timing fields (latency, throughput and speedup are measured, so they
    vary run to run)."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not TIMING.search(k)}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return json.dumps(strip(summary), sort_keys=True)


@pytest.fixture(scope="module")
def audit(dvc_api, tmp_path_factory) -> dict[str, Any]:
    """A clean clone configured with the smoke config, after its first and second `dvc repro`."""
    base = tmp_path_factory.mktemp("dvc")
    root = clean_clone(base / "clone")
    config = _deep_update(
        yaml.safe_load((root / "config" / "config.yaml").read_text()),
        yaml.safe_load((root / "config" / "smoke.yaml").read_text()),
    )
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    dvc(root, "remote", "modify", "--local", "local", "url", str(base / "remote"))
    t0 = time.monotonic()
    first = dvc(root, "repro")
    t1 = time.monotonic()
    second = dvc(root, "repro")
    t2 = time.monotonic()
    print(f"\ndvc repro (smoke, clean clone): {t1 - t0:.0f} s; second repro: {t2 - t1:.0f} s")
    ds = config["datasets"][0]["name"]
    summary = root / "results" / ds / "report" / "summary.json"
    return {
        "root": root,
        "base": base,
        "dataset": ds,
        "first": first,
        "second": second,
        "summary": json.loads(summary.read_text()),
    }


@pytest.mark.slow
def test_repro_from_clean_clone_runs_every_rule(audit):
    rules = ran_rules(audit["first"])
    expected = set(snakemake_rules(audit["root"])["rules"]) - {"all", *ACROSS_RULES}
    assert set(rules) == expected, f"ran {sorted(rules)}"
    assert rules["fetch_raw"] == 1 and rules["report"] == 1  # each job once, in its own phase
    lock = yaml.safe_load((audit["root"] / "dvc.lock").read_text())
    phases = {s.split("@")[0] for s in lock["stages"]}
    assert phases == {"data", "sasrec", "teacher", "analysis", "report"}
    outs = {o["path"] for s in lock["stages"].values() for o in s.get("outs", [])}
    ds = audit["dataset"]
    # raw downloads and student checkpoints are versioned (hashed in dvc.lock, cached)
    assert {f"data/raw/{ds}", f"results/{ds}/students", f"results/{ds}/teacher"} <= outs


@pytest.mark.slow
def test_second_repro_does_nothing_and_status_is_clean(audit):
    assert ran_rules(audit["second"]) == {}
    assert ran_stages(audit["second"]) == set()
    status = json.loads(dvc(audit["root"], "status", "--json"))
    assert status == {}, status


@pytest.mark.slow
def test_push_pull_round_trip_restores_every_output(audit):
    root, ds = audit["root"], audit["dataset"]
    # the audit record goes to git: dvc.lock, the config it ran, and the (uncached) metric
    subprocess.run([*GIT, "add", "dvc.lock", "config/config.yaml"], cwd=root, check=True)
    subprocess.run([*GIT, "add", "-f", f"results/{ds}/report/summary.json"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "smoke run"], cwd=root, check=True)
    dvc(root, "push")
    other = audit["base"] / "other"
    subprocess.run(["git", "clone", "-q", str(root), str(other)], check=True)
    dvc(other, "remote", "modify", "--local", "local", "url", str(audit["base"] / "remote"))
    assert not (other / "results" / ds / "students").exists()
    dvc(other, "pull")
    assert json.loads(dvc(other, "status", "--json")) == {}
    for rel in (f"data/raw/{ds}/MANIFEST.json", f"results/{ds}/report/summary.csv"):
        assert (other / rel).read_bytes() == (root / rel).read_bytes()
    a = sorted(p.relative_to(root) for p in (root / "results" / ds / "students").rglob("*"))
    b = sorted(p.relative_to(other) for p in (other / "results" / ds / "students").rglob("*"))
    assert a == b
    # touch after checkout: Snakemake's metadata and mtimes then agree with the pulled files
    sh(
        other,
        str(BIN / "snakemake"),
        "--cores",
        "1",
        "--touch",
        "--forceall",
        f"results/{ds}/report/summary.csv",
    )
    plan = sh(other, str(BIN / "snakemake"), "-n", f"results/{ds}/report/summary.csv")
    assert "Nothing to be done" in plan, plan[-3000:]
    assert json.loads(dvc(other, "status", "--json")) == {}
    out = dvc(other, "repro")
    assert ran_rules(out) == {} and ran_stages(out) == set()


@pytest.mark.slow
def test_one_parameter_reruns_only_the_rules_that_read_it(audit):
    root = audit["root"]
    path = root / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["distill"]["lr"] = config["distill"]["lr"] * 2
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    t0 = time.monotonic()
    out = dvc(root, "repro")
    print(f"\ndvc repro after distill.lr changed: {time.monotonic() - t0:.0f} s")
    # DVC reruns every phase (each tracks the whole config); Snakemake runs only what reads it
    assert len(ran_stages(out)) == 5
    from layerkd.config import load_config
    from layerkd.student.build import student_ids

    # the screen trains selection.screen.steps distillation steps with distill's settings, so
    # it reruns, and the layersets checkpoint re-reads its choice: the same sets, or others
    # (the random search's best may change with the lr), whose inits are then built; every
    # student of the sets chosen now is distilled and evaluated again, nothing upstream runs
    cfg = load_config(path)
    n_students = len(
        student_ids(
            root / "results" / audit["dataset"] / "layersets",
            cfg["student"]["modes"],
            cfg["distill"]["seeds"],
            cfg["student"]["compact"]["selections"],
        )
    )
    ran = ran_rules(out)
    built = ran.pop("build_student", 0)
    want = {"screen": 1, "layersets": 1, "distill": n_students, "evaluate_student": n_students}
    assert ran == want | {"report": 1}, out[-4000:]
    assert built <= n_students
    assert json.loads(dvc(root, "status", "--json")) == {}


@pytest.mark.slow
def test_two_runs_of_the_smoke_config_give_the_same_summary(audit, smoke_run):
    """Determinism on CPU: the DVC run and an independent plain Snakemake run (conftest's
    smoke_run, same config) agree on every number of summary.json except measured latency."""
    plain = json.loads(
        (smoke_run / "results" / audit["dataset"] / "report" / "summary.json").read_text()
    )
    assert comparable(audit["summary"]) == comparable(plain)
