"""Where a run's time went: the per-rule totals of its Snakemake benchmark files.

    python tools/rule_times.py RUN_DIR [RUN_DIR ...]

Every rule writes ``results/{dataset}/benchmarks/{rule}[_{wildcards}].tsv`` (seconds in column
``s``). This prints, per rule, the jobs, their summed and largest seconds, sorted by the sum;
with several run directories one column pair per run, so two runs compare rule by rule (as
ratios measured on one machine, never across machines). The rule of a file is the longest rule
name of ``rules/*.smk`` that its name starts with.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

RULE_RE = re.compile(r"^(?:checkpoint|rule)\s+([A-Za-z_][A-Za-z0-9_]*)\s*:", re.MULTILINE)


def rule_names(rules_dir: Path) -> list[str]:
    """Every rule and checkpoint defined in ``rules_dir/*.smk``, longest first."""
    names = {
        m for p in sorted(Path(rules_dir).glob("*.smk")) for m in RULE_RE.findall(p.read_text())
    }
    return sorted(names, key=lambda n: (-len(n), n))


def rule_of(stem: str, names: list[str]) -> str:
    """The rule a benchmark file belongs to (``stem`` = file name without ``.tsv``)."""
    for n in names:
        if stem == n or stem.startswith(f"{n}_"):
            return n
    return stem


def rule_times(run_dir: Path, names: list[str]) -> pd.DataFrame:
    """Per rule: ``jobs``, ``seconds`` (sum) and ``max_seconds`` over the run's benchmarks."""
    rows = []
    for path in sorted(Path(run_dir).glob("results/*/benchmarks/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if "s" not in table or table.empty:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no column 's')")
        rows.append({"rule": rule_of(path.stem, names), "s": float(table["s"].iloc[-1])})
    if not rows:
        raise ValueError(f"{run_dir}: no results/*/benchmarks/*.tsv")
    df = pd.DataFrame(rows).groupby("rule")["s"].agg(jobs="count", seconds="sum", max_seconds="max")
    return df.sort_values("seconds", ascending=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (with results/)")
    ap.add_argument("--rules", type=Path, default=Path(__file__).parents[1] / "rules")
    args = ap.parse_args(argv)
    names = rule_names(args.rules)
    tables = [rule_times(r, names).add_prefix(f"{r.name}:") for r in args.runs]
    out = pd.concat(tables, axis=1)
    total = {c: out[c].sum() for c in out.columns if c.endswith(":seconds")}
    print(out.round(1).astype(object).where(out.notna(), "").to_string())
    print("sum of rule seconds (not wall time: jobs may overlap): "
          + ", ".join(f"{c.split(':')[0]} {v:.0f} s" for c, v in total.items()))  # fmt: skip


if __name__ == "__main__":
    main()
