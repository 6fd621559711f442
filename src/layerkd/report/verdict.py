"""What every hypothesis of the report shares: the :class:`Hypothesis` record, the paired
test between two models, and how the best student is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from layerkd.evaluation.significance import holm, verdict
from layerkd.records import Record

METRIC = "ndcg@5"
VALID = "valid_ndcg@5"


@dataclass
class Hypothesis:
    """One hypothesis: what is claimed, what the run says, and the numbers behind it."""

    key: str
    title: str
    claim: str
    verdict: str
    notes: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the table as records)."""
        t = None if self.table is None else self.table.replace([np.inf, -np.inf], np.nan)
        rows = None if t is None else t.astype(object).where(t.notna(), None).to_dict("records")
        return {k: getattr(self, k) for k in ("key", "title", "claim", "verdict", "notes")} | {
            "table": rows
        }


def paired_row(cmp: pd.DataFrame, model: str, versus: str) -> pd.Series | None:
    hit = cmp[(cmp["model"] == model) & (cmp["versus"] == versus) & (cmp["metric"] == METRIC)]
    return None if hit.empty else hit.iloc[0]


def chooser(students: list[Record], valid: dict[str, float] | None) -> tuple[str, str]:
    """The column students are ranked by, and a note saying which: validation NDCG@5 when
    every student has one (so the test numbers of the chosen one stay unbiased), else test."""
    if valid and all(e["model"] in valid for e in students):
        return VALID, "chosen on validation NDCG@5; test numbers reported"
    return METRIC, "chosen on test NDCG@5 (no validation scores): optimistic choice"


def family_holm(rows: pd.DataFrame, family: str) -> pd.DataFrame:
    """``rows`` (one paired test each: ``diff``, ``p_bootstrap``; a ``same`` verdict is no
    test) with ``p_holm``, Holm's adjustment over this family of tests, and ``verdict`` from
    it; ``verdict_raw`` keeps the unadjusted one. ``family`` names the family in ``family``."""
    out = rows.copy()
    out["family"] = family
    out["verdict_raw"] = out["verdict"]
    tested = out["verdict"] != "same"
    out["p_holm"] = np.nan
    if tested.any():
        out.loc[tested, "p_holm"] = holm(out.loc[tested, "p_bootstrap"].to_numpy(float))
        out.loc[tested, "verdict"] = [
            verdict(float(d), float(q)) for d, q in out.loc[tested, ["diff", "p_holm"]].to_numpy()
        ]
    return out


def best_student(students: list[Record], valid: dict[str, float] | None) -> tuple[Record, str]:
    """The best of ``students`` by :func:`chooser`'s column (ties: the larger model name) and
    the note saying how it was chosen."""
    by, how = chooser(students, valid)

    def score(e: Record) -> tuple[float, str]:
        return (valid[e["model"]] if valid and by == VALID else e["metrics"][METRIC], e["model"])

    return max(students, key=score), how
