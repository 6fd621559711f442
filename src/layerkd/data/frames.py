"""The two frames every loader returns: interactions and item metadata, in one layout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from layerkd.data.clean import META_COLUMNS

INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def interactions_frame(
    users: Any, items: Any, ratings: Any, timestamps: Any, *, ts_divisor: int = 1
) -> pd.DataFrame:
    """Assemble the interaction table; ``floor(timestamps / ts_divisor)`` gives seconds."""
    ts = pd.to_numeric(pd.Series(timestamps), errors="coerce").to_numpy(np.float64)
    return pd.DataFrame({
        "user_id": pd.Series(users, dtype=object).astype("string").str.strip(),
        "item_id": pd.Series(items, dtype=object).astype("string").str.strip(),
        "rating": np.asarray(ratings, dtype=np.float64),
        "timestamp": np.floor(ts / ts_divisor).astype(np.int64),
    })


def meta_frame(records: list[dict[str, Any]], mapping: dict[str, str]) -> pd.DataFrame:
    """Normalise metadata records: ``mapping`` maps each of ``META_COLUMNS`` to a source field."""
    return pd.DataFrame(
        {col: [r.get(mapping[col]) if mapping.get(col) else None for r in records]
         for col in META_COLUMNS}
    )
