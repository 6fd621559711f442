"""The report of one dataset: summary tables, paired comparisons, hypotheses and plots.

Outputs (``results/{dataset}/report/``):

* ``summary.csv`` / ``summary.json`` - one row per (model, selection): a student chosen by several
  (method, strategy) pairs appears once per pair with the same numbers, so the table can be
  filtered by method. Every ranking metric with its bootstrap 95% interval, rating metrics,
  parameters, latency, throughput, retention, speedup and the NDCG@5 paired tests against the
  teacher, most-popular and the score-free baselines (``d_vs_*``, ``p_vs_*``, ``sig_vs_*``).
* ``summary.md`` / ``summary.html`` - the same, one row per model, then the hypotheses.
* ``comparisons.csv`` - every paired test on every metric; ``hypotheses.json`` (T, R, H1-H3,
  and S, the screen's validity).
* ``screen.csv`` - every screened layer set beside its distilled student's numbers;
  ``screen_validity.csv`` - Spearman/Kendall of screen scores against the final NDCG@5.
* ``plots/*.png`` - see :mod:`layerkd.report.plots`; the Markdown and HTML rendering is in
  :mod:`layerkd.report.render`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from layerkd.evaluation.full import as_primary
from layerkd.evaluation.significance import (
    comparison_table,
    is_adaptive,
    pool_seeds,
    selection_label,
)
from layerkd.io import atomic_path, read_json, write_json
from layerkd.records import Record
from layerkd.report.depth import depth_latex, depth_table
from layerkd.report.hypotheses import hypotheses
from layerkd.report.latex import to_latex
from layerkd.report.render import METRICS, ROLE_ORDER, to_html, to_markdown
from layerkd.report.screen import screen_check, screen_table, screen_validity

KEY = "ndcg@5"
VERSUS_ORDER = {"teacher": 0, "popular": 1, "sasrec": 2, "random": 3}

log = logging.getLogger(__name__)


@dataclass
class ReportInputs:
    """Every file the report reads (paths as the report rule lists them)."""

    evals: list[Path]
    scores: list[Path] = field(default_factory=list)
    selections: list[Path] = field(default_factory=list)
    finetune_log: Path | None = None
    train_logs: list[Path] = field(default_factory=list)
    validation: Path | None = None
    screens: list[Path] = field(default_factory=list)


def role(rec: Record) -> str:
    """``teacher``, ``adaptive`` (student of an importance method), ``baseline`` (student of
    score-free baselines only) or ``reference`` (random / most-popular ranker)."""
    if rec["kind"] == "student":
        return "adaptive" if is_adaptive(rec) else "baseline"
    return rec["kind"]


def _popular_flag(sig: str | None, diff: float | None) -> str:
    if sig is None:
        return ""
    if sig == "better":
        return ""
    if diff is not None and diff > 0:
        return "not significantly above most-popular"
    return "does not beat most-popular"


def attach_selections(evals: list[Record], selections: list[Record]) -> list[Record]:
    """Credit each student to every selection that kept its layers, not only the distilled
    ones (``selection.distill``): a selection that chose a distilled layer set shares that
    student. Returns new records; the inputs are not changed."""
    by_set: dict[str, list[dict[str, Any]]] = {}
    for sel in selections:
        keep = {k: sel[k] for k in ("method", "strategy", "repeat") if k in sel}
        by_set.setdefault(sel["layerset"], []).append(keep)
    out = []
    for e in evals:
        extra = by_set.get(e.get("layerset") or "", [])
        if e["kind"] != "student" or not extra:
            out.append(e)
            continue
        sels = list(e.get("selections") or [])
        seen = {selection_label(x) for x in sels}
        sels += [x for x in extra if selection_label(x) not in seen]
        out.append({**e, "selections": sels})
    return out


def validation_scores(finetune_log: Path | None, train_logs: list[Path]) -> dict[str, float]:
    """Best validation NDCG@5 of the teacher and of each student (the checkpoint each keeps),
    keyed by model name (``teacher``, ``student/{layerset}``)."""
    out = {}
    named = [("teacher", finetune_log)] + [(f"student/{p.parent.name}", p) for p in train_logs]
    for name, path in named:
        if path is not None:
            col = pd.read_parquet(path, columns=["valid_ndcg@5"])["valid_ndcg@5"].dropna()
            if not col.empty:
                out[name] = float(col.max())
    return out


def summary_rows(
    evals: list[Record], cmp: pd.DataFrame, valid: dict[str, float] | None = None
) -> pd.DataFrame:
    """One row per (model, selection) with metrics, intervals, efficiency and NDCG@5 tests;
    ``valid`` adds each model's validation NDCG@5."""
    if len({e["candidates_sha256"] for e in evals}) != 1:
        raise ValueError("models were evaluated on different test candidates")
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    t_ndcg = teacher["metrics"][KEY] if teacher else float("nan")
    t_lat = teacher.get("latency_ms_b1") if teacher else None
    key_cmp = cmp[cmp["metric"] == KEY]
    versus = sorted(set(key_cmp["versus"]), key=lambda v: (VERSUS_ORDER.get(v, 9), v))
    rows = []
    for e in evals:
        sels = e.get("selections") or [{"method": None, "strategy": None}]
        base: dict[str, Any] = {
            "model": e["model"],
            "kind": e["kind"],
            "role": role(e),
            "selections": "; ".join(selection_label(s) for s in e.get("selections") or []),
            "layers": "-".join(map(str, e["layers"])) if e.get("layers") else None,
            "n_layers": len(e["layers"]) if e.get("layers") else None,
            "mode": e.get("mode"),
            "items": e.get("items"),
            "seeds": ",".join(map(str, e.get("seeds") or [e.get("seed")]))
            if e.get("seeds") or e.get("seed") is not None
            else None,
            "params": e.get("params"),
            "params_no_embedding": e["params"] - e["params_embedding"]
            if e.get("params") is not None and e.get("params_embedding") is not None
            else None,
        }
        for m in METRICS:
            base[m] = e["metrics"][m]
            base[f"{m}_lo"], base[f"{m}_hi"] = e["ci"][m]
        base["protocol"] = e.get("protocol")
        other = (e.get("other") or {}).get("metrics") or {}
        base["other_protocol"] = e.get("other_protocol") if other else None
        base["other_ndcg@5"], base["other_mrr"] = other.get(KEY), other.get("mrr")
        base["ndcg@5_seed_sd"] = (e.get("seed_sd") or {}).get(KEY)
        base["valid_ndcg@5"] = (valid or {}).get(e["model"])
        rating = e.get("rating") or {}
        base["rating_rmse"], base["rating_accuracy"] = rating.get("rmse"), rating.get("accuracy")
        base["retention"] = e["metrics"][KEY] / t_ndcg
        lat = e.get("latency_ms_b1")
        base["latency_ms_b1"], base["throughput_users_s"] = lat, e.get("throughput_users_s")
        base["speedup"] = t_lat / lat if t_lat and lat else None
        mine = key_cmp[key_cmp["model"] == e["model"]].set_index("versus")
        for v in versus:
            hit = v in mine.index
            base[f"d_vs_{v}"] = mine.at[v, "diff"] if hit else None
            base[f"p_vs_{v}"] = mine.at[v, "p_bootstrap"] if hit else None
            base[f"sig_vs_{v}"] = mine.at[v, "verdict"] if hit else None
        if e["kind"] != "reference":
            base["flag"] = _popular_flag(base.get("sig_vs_popular"), base.get("d_vs_popular"))
        for s in sels:
            rows.append({**base, "method": s.get("method"), "strategy": s.get("strategy")})
    df = pd.DataFrame(rows)
    df["n_layers"] = df["n_layers"].astype("Int64")
    front = ["model", "kind", "role", "method", "strategy"]
    df = df[front + [c for c in df.columns if c not in front]]
    df["_o"] = df["role"].map(ROLE_ORDER)
    return df.sort_values(["_o", "model", "method"], na_position="first").drop(columns="_o")


def _pooled_other(rec: Record, members: list[Record]) -> Record:
    """A pooled-seeds record's metrics of the other protocol: the mean over its seeds."""
    names = rec.get("members")
    if not names or not rec.get("other"):
        return rec
    recs = [m for m in members if m["model"] in names and m.get("other")]
    keys = recs[0]["other"]["metrics"]
    mean = {k: float(sum(r["other"]["metrics"][k] for r in recs) / len(recs)) for k in keys}
    return {**rec, "other": {"metrics": mean}}


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, missing values as ``null``."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_report(
    inputs: ReportInputs,
    out_dir: Path,
    *,
    plots_dir: Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    dataset: str = "",
    primary: str = "sampled",
    synthetic: bool = False,
) -> pd.DataFrame:
    """Write every report file of one dataset; return the summary table. ``primary`` is the
    evaluation protocol (``eval.primary``) the tests and hypotheses use."""
    selections = [read_json(p) for p in inputs.selections]
    loaded = [as_primary(read_json(p), primary) for p in inputs.evals]
    raw = attach_selections(loaded, selections)
    evals = [_pooled_other(e, raw) for e in pool_seeds(raw, n_boot=n_boot, seed=seed)]
    scores = {(r := read_json(p))["method"]: r for p in inputs.scores}
    validation = pd.read_csv(inputs.validation) if inputs.validation else None
    # select half: the best validation NDCG@5 of each training run (early stopping read it), so
    # the best students are chosen on it; judge half: each evaluation's validation record, the
    # numbers the report shows and judges with (gate T, check S, the summary's column)
    select = validation_scores(inputs.finetune_log, inputs.train_logs)
    for e in evals:  # pooled seeds: the mean of their validation scores
        got = [select[m] for m in e.get("members", []) if m in select]
        if got:
            select[e["model"]] = float(sum(got) / len(got))
    judge = {e["model"]: float(e["valid"]["metrics"][KEY]) for e in evals if e.get("valid")}
    cmp = comparison_table(evals, METRICS, n_boot=n_boot, seed=seed)
    df = summary_rows(evals, cmp, judge)
    hyps = hypotheses(evals, scores, cmp, validation, select, n_boot=n_boot, seed=seed)
    depth = depth_table(evals, select)
    screened = screen_table(inputs.screens, evals, judge)
    screen_stats = screen_validity(screened)
    hyps.append(screen_check(screened, screen_stats))
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = [("screen.csv", screened), ("screen_validity.csv", screen_stats)]
    for name, frame in frames + ([("depth.csv", depth)] if not depth.empty else []):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    with atomic_path(out_dir / "summary.csv") as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_dir / "comparisons.csv") as tmp:
        cmp.to_csv(tmp, index=False)
    write_json(out_dir / "summary.json", _records(df))
    write_json(out_dir / "hypotheses.json", [h.to_dict() for h in hyps])
    _write_text(out_dir / "summary.md", to_markdown(df, hyps, dataset, synthetic))
    _write_text(out_dir / "summary.html", to_html(df, hyps, dataset, synthetic))
    _write_text(out_dir / "summary.tex", to_latex(df, hyps, dataset) + depth_latex(depth, dataset))
    log.info("report: %d models, %d paired tests", df["model"].nunique(), len(cmp))
    for h in hyps:
        log.info("%s %s: %s", h.key, h.title, h.verdict)
    if plots_dir is not None:
        from layerkd.report.plots import write_plots

        write_plots(
            plots_dir,
            evals=evals,
            scores=scores,
            selections=selections,
            finetune_log=inputs.finetune_log,
            train_logs=inputs.train_logs,
            validation=validation,
            depth=depth,
        )
    return df


def report_stage(
    *,
    evals: list[Path],
    scores: list[Path],
    selections: list[Path],
    finetune_log: Path,
    train_logs: list[Path],
    validation: list[Path],
    screens: list[Path],
    csv: Path,
    md: Path,
    json: Path,
    html: Path,
    tex: Path,
    comparisons: Path,
    hypotheses: Path,
    plots: Path,
    dataset: str,
    n_boot: int,
    seed: int,
    primary: str,
    synthetic: bool,
) -> pd.DataFrame:
    """The ``report`` rule: every report file of one dataset (``validation`` holds the
    method-agreement table, or nothing when fewer than two methods are configured)."""
    out_dir = csv.parent
    names = {"summary.csv": csv, "summary.md": md, "summary.json": json, "summary.html": html,
             "summary.tex": tex, "comparisons.csv": comparisons,
             "hypotheses.json": hypotheses}  # fmt: skip
    wrong = [str(p) for n, p in names.items() if p != out_dir / n]
    if wrong:
        raise ValueError(f"report writes {sorted(names)} into one directory; got {wrong}")
    inputs = ReportInputs(
        evals=evals,
        scores=scores,
        selections=selections,
        finetune_log=finetune_log,
        train_logs=train_logs,
        validation=validation[0] if validation else None,
        screens=screens,
    )
    return write_report(
        inputs,
        out_dir,
        plots_dir=plots,
        n_boot=n_boot,
        seed=seed,
        dataset=dataset,
        primary=primary,
        synthetic=synthetic,
    )
