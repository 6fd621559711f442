"""Paired significance tests between evaluated models, for the report.

Every eval record (``eval/{model}.json``) keeps per-user metric arrays (``per_user``) and the
users they belong to (``user_ids``); two models scored on the same test candidates are compared
user by user:

* each student against the teacher, the most-popular ranker, and every score-free baseline
  student (``first_k``, ``uniform``, ``random-r``, ...) with the same ``k`` and mode;
* the teacher against the most-popular and random rankers.

Each comparison runs the paired bootstrap of the mean difference (the primary test: it tests
the quantity the report shows) and the Wilcoxon signed-rank test (a check that does not rest
on the mean). p-values are two-sided and unadjusted; ``p_holm`` adds Holm's step-down
adjustment over all comparisons of one metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from layerkd.evaluation.stats import bootstrap_ci, paired_bootstrap, two_level_ci, wilcoxon
from layerkd.records import Record
from layerkd.selection.names import SelectionName, StudentName

__all__ = [
    "ALPHA",
    "baseline_label",
    "baseline_students",
    "comparison_table",
    "compare",
    "holm",
    "is_adaptive",
    "paired_arrays",
    "pool_seeds",
    "selection_label",
    "verdict",
]

#: Significance level of every test in the report.
ALPHA = 0.05
#: Reference rankers every LLM model must beat.
REFERENCES = ("popular", "sasrec", "random")


def selection_label(sel: dict[str, Any]) -> str:
    """``method/strategy`` of one selection; random repeats read ``none/random-r``."""
    return SelectionName.of(sel).label


def baseline_label(sel: dict[str, Any]) -> str | None:
    """The baseline name (``first_k``, ``uniform``, ``random-0``...) of a score-free selection,
    ``None`` for an importance-driven one."""
    if sel["method"] != "none":
        return None
    return selection_label(sel).split("/", 1)[1]


def is_adaptive(rec: Record) -> bool:
    """A student chosen by at least one importance method (not only by score-free baselines)."""
    return any(s["method"] != "none" for s in rec.get("selections") or [])


def baseline_students(evals: Iterable[Record]) -> dict[str, list[Record]]:
    """Students of each score-free baseline, keyed by baseline name (one per k and mode)."""
    out: dict[str, list[Record]] = {}
    for rec in evals:
        if rec["kind"] != "student":
            continue
        for sel in rec.get("selections") or []:
            name = baseline_label(sel)
            if name is not None and rec not in out.setdefault(name, []):
                out[name].append(rec)
    return out


def paired_arrays(a: Record, b: Record, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values of ``metric`` for two models, aligned by user.

    Raises:
        ValueError: when the two records do not hold the same users.
    """
    x = np.asarray(a["per_user"][metric], dtype=np.float64)
    y = np.asarray(b["per_user"][metric], dtype=np.float64)
    ua, ub = [str(u) for u in a["user_ids"]], [str(u) for u in b["user_ids"]]
    if ua == ub:
        return x, y
    pos = {u: i for i, u in enumerate(ub)}
    if len(pos) != len(ub) or len(ua) != len(ub) or set(ua) != set(pos):
        raise ValueError(f"{a['model']} and {b['model']} were not evaluated on the same users")
    return x, y[[pos[u] for u in ua]]


def verdict(diff: float, p: float, same: bool = False, alpha: float = ALPHA) -> str:
    """``same`` (one model), ``better`` / ``worse`` (significant at ``alpha``) or ``ns``."""
    if same:
        return "same"
    if p < alpha and diff != 0:
        return "better" if diff > 0 else "worse"
    return "ns"


def compare(a: Record, b: Record, metric: str, *, n_boot: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap and Wilcoxon test of ``metric(a) - metric(b)`` over shared users."""
    x, y = paired_arrays(a, b, metric)
    same = a["model"] == b["model"]
    boot = paired_bootstrap(x, y, n_boot=n_boot, seed=seed)
    wil = wilcoxon(x, y)
    diff, p = float(boot["mean_diff"]), float(boot["p_value"])
    return {
        "metric": metric,
        "mean": float(x.mean()),
        "mean_versus": float(y.mean()),
        "diff": diff,
        "diff_lo": float(boot["ci_lo"]),
        "diff_hi": float(boot["ci_hi"]),
        "p_bootstrap": p,
        "p_wilcoxon": float(wil["p_value"]),
        "n_users": int(x.size),
        "verdict": verdict(diff, p, same),
    }


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as the input)."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def _same_setting(a: Record, b: Record) -> bool:
    """Same k, same student mode and same training seed (``None`` for pooled seeds)."""
    return (
        len(a.get("layers") or []) == len(b.get("layers") or [])
        and a.get("mode") == b.get("mode")
        and a.get("seed") == b.get("seed")
    )


def _pairs(evals: Sequence[Record]) -> list[tuple[Record, str, Record]]:
    """(model, versus name, versus record) for every comparison the report makes."""
    by_name = {e["model"]: e for e in evals}
    teacher = next((e for e in evals if e["kind"] == "teacher"), None)
    baselines = baseline_students(evals)
    pairs: list[tuple[Record, str, Record]] = []
    if teacher is not None:
        pairs += [(teacher, r, by_name[r]) for r in REFERENCES if r in by_name]
    for rec in sorted((e for e in evals if e["kind"] == "student"), key=lambda e: e["model"]):
        if teacher is not None:
            pairs.append((rec, "teacher", teacher))
        for ref in ("popular", "sasrec"):  # the references a student must beat as well
            if ref in by_name:
                pairs.append((rec, ref, by_name[ref]))
        for name in sorted(baselines):
            for base in baselines[name]:
                if _same_setting(rec, base):
                    pairs.append((rec, name, base))
    return pairs


def comparison_table(
    evals: Sequence[Record], metrics: Sequence[str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Every paired comparison of the report, one row per (model, versus, metric).

    Columns: ``model``, ``versus`` (teacher, popular, random or a baseline name),
    ``versus_model``, ``metric``, ``mean``, ``mean_versus``, ``diff`` with its bootstrap
    interval ``diff_lo``/``diff_hi``, ``p_bootstrap``, ``p_wilcoxon``, ``p_holm``, ``n_users``
    and ``verdict`` (``better``/``worse``/``ns``/``same``, from the bootstrap at :data:`ALPHA`).
    """
    rows = [
        {"model": a["model"], "versus": name, "versus_model": b["model"]}
        | compare(a, b, m, n_boot=n_boot, seed=seed)
        for a, name, b in _pairs(evals)
        for m in metrics
    ]
    cols = ["model", "versus", "versus_model", "metric", "mean", "mean_versus", "diff"]
    cols += ["diff_lo", "diff_hi", "p_bootstrap", "p_wilcoxon", "p_holm", "n_users", "verdict"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    df["p_holm"] = 1.0  # a model against itself is no test and does not count in Holm's m
    tested = df["verdict"] != "same"
    for _, idx in df[tested].groupby("metric").groups.items():
        df.loc[idx, "p_holm"] = holm(df.loc[idx, "p_bootstrap"].to_numpy())
    return df[cols]


def _pool(group: list[Record], n_boot: int, seed: int) -> Record:
    """One record for the training seeds of a student: per-user metrics averaged over seeds
    (paired by user); ``ci`` is the two-level interval (seeds, then users:
    :func:`~layerkd.evaluation.stats.two_level_ci`), ``ci_users`` the users-only one of the
    seed means; the spread over seeds is kept."""
    first = group[0]
    metrics = list(first["per_user"])
    by_seed = {m: np.stack([paired_arrays(first, g, m)[1] for g in group]) for m in metrics}
    per_user = {m: v.mean(axis=0) for m, v in by_seed.items()}
    means = {m: [g["metrics"][m] for g in group] for m in metrics}
    kind, _, stem = first["model"].rpartition("/")  # student/{layerset}__{mode}__s{seed}
    name = f"{kind}/{StudentName.parse(stem).pooled}" if kind else StudentName.parse(stem).pooled
    rating = [g.get("rating") or {} for g in group]
    valid = None
    if all(g.get("valid") for g in group):  # validation metrics, pooled the same way
        vs = [g["valid"] for g in group]
        v_user = {m: np.mean([paired_arrays(vs[0], v, m)[1] for v in vs], axis=0) for m in metrics}
        valid = {**vs[0], "per_user": {m: v.tolist() for m, v in v_user.items()}}
        valid["metrics"] = {m: float(v.mean()) for m, v in v_user.items()}
        valid["seed_metrics"] = {str(g.get("seed")): dict(g["valid"]["metrics"]) for g in group}
    return {
        **first,
        "model": name,
        "seed": None,
        "seeds": sorted(g.get("seed") for g in group),
        "members": [g["model"] for g in group],
        "per_user": {m: v.tolist() for m, v in per_user.items()},
        "metrics": {m: float(v.mean()) for m, v in per_user.items()},
        "ci": {m: list(two_level_ci(v, n_boot=n_boot, seed=seed)[1:]) for m, v in by_seed.items()},
        "ci_users": {
            m: list(bootstrap_ci(v, n_boot=n_boot, seed=seed)[1:]) for m, v in per_user.items()
        },
        "seed_sd": {m: float(np.std(v, ddof=1)) for m, v in means.items()},
        "seed_metrics": {str(g.get("seed")): dict(g["metrics"]) for g in group},
        "latency_ms_b1": float(np.mean([g.get("latency_ms_b1") or np.nan for g in group])),
        "throughput_users_s": float(
            np.mean([g.get("throughput_users_s") or np.nan for g in group])
        ),
        "rating": {
            k: float(np.mean([r.get(k, np.nan) for r in rating])) for k in ("rmse", "accuracy")
        },
        "valid": valid,
    }


def pool_seeds(evals: Sequence[Record], *, n_boot: int, seed: int) -> list[Record]:
    """Students trained with several seeds (same layer set and mode, ``seed`` set) become one
    record named ``student/{layerset}__{mode}`` (see :func:`_pool`); everything else, single-seed
    students included, is returned unchanged."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for e in evals:
        if e["kind"] == "student" and e.get("seed") is not None:
            groups.setdefault((e.get("layerset") or e["model"], e.get("mode") or ""), []).append(e)
    pooled = {id(g[0]): _pool(g, n_boot, seed) for g in groups.values() if len(g) > 1}
    skip = {id(e) for g in groups.values() if len(g) > 1 for e in g[1:]}
    return [pooled.get(id(e), e) for e in evals if id(e) not in skip]
