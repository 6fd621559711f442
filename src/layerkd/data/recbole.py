"""RecBole atomic files: ``{name}.inter`` and ``{name}.item``.

Atomic files are tab-separated with a typed header, e.g.
``user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float`` and
``item_id:token<TAB>title:token_seq<TAB>brand:token<TAB>categories:token_seq``. ``token_seq``
values are space-separated tokens, so a title reads as its words. Timestamps are seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layerkd.data.clean import META_COLUMNS
from layerkd.data.csv_tables import read_csv_table
from layerkd.data.frames import interactions_frame
from layerkd.data.readers import open_text

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
# metadata column -> candidate RecBole field names, first present wins
ITEM_FIELDS = {"title": ("title", "name", "movie_title"), "brand": ("brand",),
               "description": ("description",), "details": ("categories", "genre")}


def read_header(path: Path) -> dict[str, str]:
    """Field name -> type of an atomic file's header line (``name:type`` columns)."""
    with open_text(Path(path)) as fh:
        first = fh.readline().rstrip("\r\n")
    fields: dict[str, str] = {}
    for col in first.split("\t"):
        name, sep, kind = col.strip().rpartition(":")
        if not sep or not name or kind not in ATOMIC_TYPES:
            raise ValueError(f"{path}: header column {col!r} is not 'name:type' with a type in "
                             f"{ATOMIC_TYPES}")
        fields[name] = kind
    return fields


def read_atomic_file(
    path: Path, required: tuple[str, ...], max_bad_share: float
) -> tuple[pd.DataFrame, dict[str, str], dict[str, Any]]:
    """Read an atomic file: the frame (float fields as float64), the field types, line counts."""
    types = read_header(path)
    missing = [f for f in required if f not in types]
    if missing:
        raise ValueError(f"{path}: header lacks required fields {missing}; has {list(types)}")
    numeric = tuple(f for f, t in types.items() if t == "float" and f in required)
    df, stats = read_csv_table(path, columns=tuple(types), required=required, numeric=numeric,
                               skip_header=True, max_bad_share=max_bad_share, delimiter="\t")
    return df, types, stats


def load_recbole_files(
    raw_dir: Path, category: str, max_bad_share: float
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """``{category}.inter`` (needs ``user_id``, ``item_id``, ``timestamp``; ``rating`` optional)
    and, when present, ``{category}.item`` as metadata."""
    inter_path = Path(raw_dir) / f"{category}.inter"
    if not inter_path.is_file():
        raise FileNotFoundError(f"{inter_path} not found")
    types = read_header(inter_path)
    required = ("user_id", "item_id", "timestamp") + (("rating",) if "rating" in types else ())
    df, types, istats = read_atomic_file(inter_path, required, max_bad_share)
    ratings = df["rating"].to_numpy() if "rating" in df else np.full(len(df), np.nan)
    inter = interactions_frame(df["user_id"].tolist(), df["item_id"].tolist(), ratings,
                               df["timestamp"].to_numpy())
    files = [istats]
    meta = None
    item_path = Path(raw_dir) / f"{category}.item"
    if item_path.is_file():
        items, itypes, mstats = read_atomic_file(item_path, ("item_id",), max_bad_share)
        files.append(mstats)
        cols: dict[str, Any] = {"item_id": items["item_id"]}
        for col in META_COLUMNS[1:]:
            field = next((f for f in ITEM_FIELDS[col] if f in itypes), None)
            cols[col] = items[field] if field is not None else None
        meta = pd.DataFrame(cols, columns=list(META_COLUMNS))
    return inter, meta, {"files": files}
