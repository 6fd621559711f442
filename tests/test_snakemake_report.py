"""``snakemake --report`` on the smoke workflow: the report files and a self-contained HTML
report hold the plots and the summary table of every model.

Uses the session's smoke run (``smoke_run`` in conftest: the whole smoke DAG in a copy of the
workflow, about two minutes, shared with test_workflow.py).
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
from pathlib import Path

import pytest
from conftest import run_snakemake

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _models(res: Path) -> list[str]:
    """Every evaluated model; students trained with several seeds appear pooled, under their
    name without the ``__s{seed}`` suffix."""
    return [json.loads(p.read_text())["model"] for p in (res / "eval").rglob("*.json")]


def _shown(name: str, text: str) -> bool:
    return name in text or name.rsplit("__s", 1)[0] in text


def _decode(uri: str) -> bytes:
    return base64.b64decode(uri.split(",", 1)[1])


def test_report_files_hold_every_model(smoke_run: Path) -> None:
    res = smoke_run / "results" / "smoke"
    models = _models(res)
    assert {"teacher", "random", "popular"} <= set(models) and len(models) >= 4
    for name in ("summary.csv", "summary.md", "summary.json", "summary.html"):
        text = (res / "report" / name).read_text()
        assert all(_shown(m, text) for m in models), name
    plots = {p.name for p in (res / "report" / "plots").glob("*.png")}
    assert {"importance.png", "selection.png", "pareto.png", "curve_teacher.png"} <= plots
    n_students = sum(m.startswith("student/") for m in models)
    assert sum(p.startswith("curve_L") for p in plots) == n_students
    hyps = json.loads((res / "report" / "hypotheses.json").read_text())
    assert [h["key"] for h in hyps] == ["T", "R", "H1", "H2", "H3", "S"]
    assert all(h["verdict"] in {"holds", "does not hold", "partly", "untestable"} for h in hyps)


def test_snakemake_html_report(smoke_run: Path) -> None:
    proc = run_snakemake(
        smoke_run, "--cores", "1", "--configfile", "config/smoke.yaml", "--report", "report.html"
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = (smoke_run / "report.html").read_text()
    assert "<script src=" not in html  # self-contained: libraries inlined, files embedded
    match = re.search(r"var results = (\{.*?\});\n", html, re.S)
    assert match, "no results block in report.html"
    results = json.loads(match.group(1))
    names = {Path(k).name for k in results}
    assert {"summary.html", "summary.csv", "comparisons.csv", "pareto.png"} <= names
    assert {"importance.png", "selection.png", "curve_teacher.png"} <= names
    summary = next(v for k, v in results.items() if k.endswith("summary.html"))
    table = _decode(summary["data_uri"]).decode()
    assert all(_shown(m, table) for m in _models(smoke_run / "results" / "smoke"))
    assert "Hypotheses" in table and "H3." in table
    pareto = next(v for k, v in results.items() if k.endswith("pareto.png"))
    assert _decode(pareto["data_uri"])[:8] == PNG_MAGIC
    assert "Test NDCG@5" in html_lib.unescape(pareto["caption"])  # docutils writes @ as &#64;
