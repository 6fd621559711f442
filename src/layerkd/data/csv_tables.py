"""Reading delimited rating tables (CSV, RecBole TSV) with bad-row accounting, vectorised.

A row is bad when it has the wrong number of fields, an empty required field or a non-numeric
value in a numeric column; bad rows are counted by reason and dropped, and a file with more than
``max_bad_share`` bad rows is rejected naming its first bad line (see :mod:`readers`). Blank lines
are skipped and not counted.

Files without quote characters take a fast path: field counts come from counting delimiters in
the raw bytes with numpy and the fields are parsed by the pandas C parser. Files with quotes (or
stray carriage returns) are read by the :mod:`csv` module, row by row, with the same result.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layerkd.data.readers import DEFAULT_MAX_BAD_SHARE, BadLineCounter, open_text


def _read_bytes(path: Path) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if str(path).endswith(".gz") else data


def _fast_split(
    raw: bytes, n_columns: int, delimiter: str, skip_header: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """``(rows with n_columns fields, their line numbers, line numbers with another count)``.

    Returns None when the fast path does not apply (quotes or lone carriage returns).
    """
    raw = raw.replace(b"\r\n", b"\n")
    if b'"' in raw or b"\r" in raw:
        return None
    arr = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(arr == ord("\n"))
    ends = newlines if arr.size and arr[-1] == ord("\n") else np.append(newlines, arr.size)
    starts = np.concatenate([[0], newlines + 1])[: ends.size]
    lineno = np.arange(1, ends.size + 1)
    delim = np.concatenate([[0], np.cumsum(arr == ord(delimiter))])
    space = np.concatenate([[0], np.cumsum((arr == ord(" ")) | (arr == ord("\t")))])
    n_fields = delim[ends] - delim[starts] + 1
    blank = (space[ends] - space[starts]) == (ends - starts)
    names = [f"c{j}" for j in range(max(n_columns, int(n_fields.max(initial=1))))]
    frame = pd.read_csv(io.BytesIO(raw), sep=delimiter, header=None, names=names, dtype=str,
                        skip_blank_lines=False, na_filter=False, quoting=csv.QUOTE_NONE,
                        engine="c")
    if len(frame) != ends.size:
        return None
    keep = ~blank
    if skip_header:
        keep[:1] = False
    good = keep & (n_fields == n_columns)
    wrong = lineno[keep & (n_fields != n_columns)]
    return frame.loc[good, names[:n_columns]].reset_index(drop=True), lineno[good], wrong


def _slow_split(
    path: Path, n_columns: int, delimiter: str, skip_header: bool
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The same as :func:`_fast_split` with the :mod:`csv` module."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    rows: list[list[str]] = []
    good: list[int] = []
    wrong: list[int] = []
    with open_text(Path(path)) as fh:
        for lineno, fields in enumerate(csv.reader(fh, delimiter=delimiter, quoting=quoting), 1):
            if (lineno == 1 and skip_header) or not any(f.strip() for f in fields):
                continue
            if len(fields) == n_columns:
                rows.append(fields)
                good.append(lineno)
            else:
                wrong.append(lineno)
    frame = pd.DataFrame(rows, columns=[f"c{j}" for j in range(n_columns)], dtype=object)
    return frame, np.asarray(good, dtype=np.int64), np.asarray(wrong, dtype=np.int64)


def read_csv_table(
    path: Path,
    *,
    columns: tuple[str, ...],
    required: tuple[str, ...],
    numeric: tuple[str, ...],
    skip_header: bool,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    delimiter: str = ",",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a delimited file with a fixed column layout: strings, numeric columns as float64.

    Returns the good rows and the line counts (``file, lines, bad_lines, bad_by_reason``).
    """
    split = _fast_split(_read_bytes(path), len(columns), delimiter, skip_header)
    df, linenos, wrong = split or _slow_split(path, len(columns), delimiter, skip_header)
    df.columns = list(columns)
    bad = np.zeros(len(df), dtype=bool)
    reasons = np.full(len(df), "", dtype=object)
    for col in required:
        miss = (df[col].astype(str).str.strip() == "").to_numpy() & ~bad
        reasons[miss] = f"missing_{col}"
        bad |= miss
    for col in numeric:
        values = pd.to_numeric(df[col].astype(str).str.strip(), errors="coerce")
        values = values.astype(np.float64).to_numpy()
        nonnum = ~np.isfinite(values) & ~bad
        reasons[nonnum] = f"non_numeric_{col}"
        bad |= nonnum
        df[col] = values
    counter = BadLineCounter(path)
    counter.lines = len(df) + len(wrong)
    bad_lines = sorted([(int(n), "wrong_field_count") for n in wrong]
                       + [(int(linenos[i]), str(reasons[i])) for i in np.flatnonzero(bad)])
    for lineno, reason in bad_lines:
        counter.add_bad(lineno, reason)
    stats = counter.check(max_bad_share)
    return df.loc[~bad].reset_index(drop=True), stats
