"""``summary.tex``: the model table and the hypotheses table for a paper (booktabs).

One row per model with its primary-protocol metrics as ``mean ± half-width`` of the bootstrap
95% interval; the best value of each metric column is in bold (ties all bold). Needs
``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import math

import pandas as pd

from layerkd.report.verdict import Hypothesis

COLUMNS = (("ndcg@5", "NDCG@5"), ("ndcg@10", "NDCG@10"), ("mrr", "MRR"), ("hr@10", "HR@10"))
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\^{}"}  # fmt: skip


def escape(text: object) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_SPECIAL.get(c, c) for c in str(text))


def _cell(mean: float, lo: float, hi: float, best: bool) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "--"
    text = f"{mean:.4f} $\\pm$ {(hi - lo) / 2:.4f}"
    return f"\\textbf{{{text}}}" if best else text


def model_table(df: pd.DataFrame, caption: str = "") -> str:
    """The models (one row each) with every metric of :data:`COLUMNS` and retention;
    ``caption`` is LaTeX (escape what it quotes)."""
    one = df.drop_duplicates("model").reset_index(drop=True)
    best = {m: one[m].max() for m, _ in COLUMNS}
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption}}}" if caption else "",
        "\\begin{tabular}{l" + "r" * (len(COLUMNS) + 1) + "}",
        "\\toprule",
        "Model & " + " & ".join(name for _, name in COLUMNS) + " & Retention \\\\",
        "\\midrule",
    ]
    for _, row in one.iterrows():
        cells = [
            _cell(row[m], row[f"{m}_lo"], row[f"{m}_hi"], row[m] == best[m]) for m, _ in COLUMNS
        ]
        ret = row.get("retention")
        cells.append("--" if ret is None or pd.isna(ret) else f"{ret:.3f}")
        lines.append(f"{escape(row['model'])} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(line for line in lines if line) + "\n"


def hypotheses_table(hyps: list[Hypothesis]) -> str:
    """Each hypothesis: its key, title and verdict."""
    lines = ["\\begin{table}[t]", "\\centering", "\\begin{tabular}{llp{0.55\\linewidth}}",
             "\\toprule", "& Hypothesis & Verdict \\\\", "\\midrule"]  # fmt: skip
    for h in hyps:
        lines.append(f"{escape(h.key)} & {escape(h.title)} & {escape(h.verdict)} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, hyps: list[Hypothesis], dataset: str = "") -> str:
    """Both tables, for ``\\input`` in a paper."""
    protocol = next(iter(df.get("protocol", pd.Series(dtype=object)).dropna()), "sampled")
    caption = f"{escape(dataset)}: test metrics ({protocol} ranking), mean $\\pm$ half 95\\% CI"
    return model_table(df, caption) + "\n" + hypotheses_table(hyps)
