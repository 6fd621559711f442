"""Rendering of the report tables: the display columns, Markdown and HTML pages."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from layerkd.evaluation.metrics import RANKING_KEYS
from layerkd.report.hypotheses import Hypothesis

METRICS = RANKING_KEYS
ROLE_ORDER = {"teacher": 0, "adaptive": 1, "baseline": 2, "reference": 3}
MARK = {"better": "▲", "worse": "▼", "ns": "", "same": "="}
VERSUS_NAME = {"popular": "most-popular", "sasrec": "SASRec", "random": "random ranker"}


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{v:.4f} [{lo:.4f}, {hi:.4f}]"


def _num(v: Any, fmt: str) -> str:
    return "" if v is None or pd.isna(v) else format(v, fmt)


def _sig(row: pd.Series, v: str) -> str:
    sig = row.get(f"sig_vs_{v}")
    if sig is None or pd.isna(sig):
        return ""
    if sig == "same":
        return "= (same model)"
    return f"{row[f'd_vs_{v}']:+.4f} {MARK[sig]} (p={row[f'p_vs_{v}']:.3g})".replace("  ", " ")


def display_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two display tables, one row per model: metrics with intervals; efficiency and tests."""
    one = df.drop_duplicates("model")
    models = pd.DataFrame(
        {
            "model": one["model"],
            "selections": one["selections"],
            "layers": one["layers"].fillna(""),
            "mode": one["mode"].fillna(""),
            "items": one["items"].fillna("") if "items" in one else "",
            "params": [_num(p, ",.0f") for p in one["params"]],
        }
    )
    if "params_no_embedding" in one and one["params_no_embedding"].notna().any():
        models["params w/o embeddings"] = [_num(p, ",.0f") for p in one["params_no_embedding"]]
    if one["seeds"].notna().any():
        models.insert(4, "seeds", one["seeds"].fillna(""))
    for m in METRICS:
        models[m] = [_ci(*r) for r in one[[m, f"{m}_lo", f"{m}_hi"]].itertuples(index=False)]
    if "other_ndcg@5" in one and one["other_ndcg@5"].notna().any():
        other = one["other_protocol"].dropna().iloc[0]
        models[f"ndcg@5 ({other})"] = [_num(v, ".4f") for v in one["other_ndcg@5"]]
        models[f"mrr ({other})"] = [_num(v, ".4f") for v in one["other_mrr"]]
    eff = pd.DataFrame(
        {
            "model": one["model"],
            "retention": [_num(v, ".3f") for v in one["retention"]],
            "speedup": [_num(v, ".2f") for v in one["speedup"]],
            "latency ms (b=1)": [_num(v, ".2f") for v in one["latency_ms_b1"]],
            "users/s (b=32)": [_num(v, ",.0f") for v in one["throughput_users_s"]],
            "rating RMSE": [_num(v, ".3f") for v in one["rating_rmse"]],
            "valid NDCG@5 (judge half)": [_num(v, ".4f") for v in one["valid_ndcg@5"]],
        }
    )
    if one["ndcg@5_seed_sd"].notna().any():
        eff["NDCG@5 sd over seeds"] = [_num(v, ".4f") for v in one["ndcg@5_seed_sd"]]
    for v in [c[len("sig_vs_") :] for c in one.columns if c.startswith("sig_vs_")]:
        eff[f"vs {VERSUS_NAME.get(v, v)}"] = [_sig(r, v) for _, r in one.iterrows()]
    eff["flag"] = one["flag"].fillna("") if "flag" in one else ""
    return models.reset_index(drop=True), eff.reset_index(drop=True)


LEGEND = (
    "Intervals: percentile bootstrap 95% over users. `vs X`: NDCG@5 difference (model − X), "
    "paired bootstrap p (two-sided, unadjusted, never below 2/(B+1) for B resamples; "
    "Holm-adjusted values in comparisons.csv); "
    "▲/▼ significantly better/worse at 0.05. Retention = NDCG@5 / teacher NDCG@5; "
    "speedup = teacher latency / model latency at batch 1."
)


PROTOCOL_TEXT = {
    "sampled": "sampled ranking: the target among its fixed 1+N candidates",
    "full": "full ranking: the target against every item but the user's own earlier items",
}
SYNTHETIC = (
    "**Synthetic data.** This dataset comes from the built-in generator: its item families and "
    "next-item rule are what the models learn, so the hypothesis verdicts below describe the "
    "generator, not real users. Read them as a check that the pipeline measures correctly."
)


def teacher_items(df: pd.DataFrame) -> str:
    """`` (teacher items: MODE)`` for a title: how items reach the teacher (``teacher.items``),
    read from its evaluation record; empty when the records do not say."""
    if "items" not in df:
        return ""
    modes = df.loc[df["kind"] == "teacher", "items"].dropna().unique()
    return f" (teacher items: {modes[0]})" if len(modes) else ""


def front_notes(df: pd.DataFrame, synthetic: bool = False) -> list[str]:
    """What a reader must know before the tables: the protocol of the metrics and tests, and
    on synthetic data that the verdicts describe the generator."""
    protocols = [p for p in df.get("protocol", pd.Series(dtype=object)).dropna().unique()]
    notes = [f"Metrics and tests: {PROTOCOL_TEXT.get(p, p)} (eval.primary)." for p in protocols[:1]]
    return notes + ([SYNTHETIC] if synthetic else [])


def to_markdown(
    df: pd.DataFrame, hyps: list[Hypothesis], dataset: str = "", synthetic: bool = False
) -> str:
    """``summary.md``: the two model tables, the legend and the hypotheses."""
    models, eff = display_tables(df)
    out = [f"# layerkd summary{f': {dataset}' if dataset else ''}{teacher_items(df)}", ""]
    for note in front_notes(df, synthetic):
        out += [note, ""]
    out += ["## Models", ""]
    out += [models.to_markdown(index=False), "", "## Efficiency and significance (NDCG@5)", ""]
    out += [eff.to_markdown(index=False), "", LEGEND, "", "## Hypotheses", ""]
    for h in hyps:
        out += [f"### {h.key}. {h.title}: **{h.verdict}**", "", f"*Claim:* {h.claim}", ""]
        out += [f"- {n}" for n in h.notes] + [""]
        if h.table is not None and not h.table.empty:
            table = h.table.astype(object).where(h.table.notna(), "")
            out += [table.to_markdown(index=False, floatfmt=".4g"), ""]
    return "\n".join(out) + "\n"


CSS = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
    "font-size:13px;margin:.5em 0 1.2em}th,td{border:1px solid #ccc;padding:3px 7px;"
    "text-align:left}th{background:#f0f0f0}.v{font-weight:bold;padding:1px 6px;border-radius:4px}"
    ".holds{background:#cfe8cf}.does{background:#f4c7c3}.partly,.untestable{background:#f6e7b0}"
)


def to_html(
    df: pd.DataFrame, hyps: list[Hypothesis], dataset: str = "", synthetic: bool = False
) -> str:
    """``summary.html``: a self-contained page for the Snakemake report."""
    models, eff = display_tables(df)
    esc = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>layerkd summary {esc(dataset)}"
        f"</title><style>{CSS}</style></head><body><h1>layerkd summary {esc(dataset)}"
        f"{esc(teacher_items(df))}</h1>",
        *(f"<p>{esc(n.replace('**', ''))}</p>" for n in front_notes(df, synthetic)),
        "<h2>Models</h2>",
        models.to_html(index=False, classes="summary", border=0),
        "<h2>Efficiency and significance (NDCG@5)</h2>",
        eff.to_html(index=False, border=0),
        f"<p>{esc(LEGEND.replace('`', ''))}</p><h2>Hypotheses</h2>",
    ]
    for h in hyps:
        cls = h.verdict.split()[0]
        parts.append(
            f"<h3>{esc(h.key)}. {esc(h.title)}: <span class='v {cls}'>{esc(h.verdict)}</span></h3>"
            f"<p><i>Claim:</i> {esc(h.claim)}</p><ul>"
            + "".join(f"<li>{esc(n)}</li>" for n in h.notes)
            + "</ul>"
        )
        if h.table is not None and not h.table.empty:
            parts.append(
                h.table.to_html(index=False, border=0, na_rep="", float_format="{:.4g}".format)
            )
    return "\n".join(parts) + "\n</body></html>\n"
