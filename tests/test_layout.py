"""The package layout mirrors the DAG, and its import rules hold (DESIGN.md, house style):
``data`` imports no model code; ``importance`` knows no students; ``selection`` is pure (numpy
in, layers out); ``models`` is the shared core and imports no stage package; nothing in the
library imports ``scripts/`` or Snakemake; modules stay around 300 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "layerkd"
MODEL_CODE = ("torch", "transformers", "peft", "safetensors", "accelerate", "gguf")
STAGES = ("teacher", "importance", "selection", "student", "evaluation", "report")
#: package -> module prefixes it must not import (at any depth, inside functions too)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "data": (*MODEL_CODE, "layerkd.models", *(f"layerkd.{s}" for s in STAGES)),
    "importance": ("layerkd.student", "layerkd.report"),
    "selection": (
        *MODEL_CODE,
        "pandas",
        "layerkd.data",
        "layerkd.models",
        *(f"layerkd.{s}" for s in STAGES if s != "selection"),
    ),
    "models": ("layerkd.data", *(f"layerkd.{s}" for s in STAGES if s != "evaluation")),
    "evaluation": ("layerkd.student", "layerkd.importance", "layerkd.report"),
}
EVERYWHERE = ("scripts", "snakemake")
MAX_LINES = 350  # "around 300"


def imports(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path`` (a module under the package ``src``),
    relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(src.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            found.append((node.lineno, base))
    return found


def violations(src: Path = SRC) -> list[str]:
    """Every broken import rule under ``src`` (a ``layerkd`` package directory)."""
    out = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        package = rel.parts[0] if len(rel.parts) > 1 else ""
        banned = (*FORBIDDEN.get(package, ()), *EVERYWHERE)
        for line, module in imports(path, src):
            hit = next((b for b in banned if module == b or module.startswith(b + ".")), None)
            if hit is not None:
                out.append(f"{rel}:{line} imports {module} ({package or 'layerkd'} may not)")
    return out


def test_the_library_follows_its_import_rules():
    assert violations() == []


def test_the_check_catches_a_forbidden_import(tmp_path):
    """The rule checker itself, on a copy of the package with one forbidden import added."""
    import shutil

    pkg = tmp_path / "layerkd"
    shutil.copytree(SRC, pkg)
    target = pkg / "selection" / "strategies.py"
    target.write_text(target.read_text() + "\n\ndef _f():\n    import torch\n")
    (pkg / "data" / "bad.py").write_text("from ..student.build import build_student\n")
    found = violations(pkg)
    assert any(v.startswith("selection/strategies.py") and "torch" in v for v in found), found
    assert any(v.startswith("data/bad.py") and "layerkd.student" in v for v in found), found


@pytest.mark.parametrize("package", ["data", "teacher", "importance", "selection", "student",
                                     "evaluation", "report", "models"])  # fmt: skip
def test_each_stage_package_exists(package):
    assert (SRC / package / "__init__.py").is_file()


def test_modules_stay_around_300_lines():
    long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
