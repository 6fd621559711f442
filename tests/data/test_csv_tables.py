"""Tests of delimited-table reading: bad-row accounting, fast and csv-module paths agree."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from layerkd.data.csv_tables import read_csv_table
from layerkd.data.readers import BadFileError

COLS = ("item", "user", "rating", "timestamp")


def test_csv_table_counts_bad_rows_in_line_order(tmp_path: Path) -> None:
    rows = [f"i{k},u{k},{k % 5 + 1}.0,{1000 + k}" for k in range(400)]
    rows[9] = "i9,u9,abc,1009"  # line 10 (no header)
    rows[3] = "i3,u3"  # line 4: wrong field count, the first bad line
    rows[100] = ",u100,5.0,1100"
    path = tmp_path / "r.csv"
    path.write_text("\n".join(rows) + "\n")
    df, stats = read_csv_table(path, columns=("item", "user", "rating", "timestamp"),
                               required=("item", "user"), numeric=("rating", "timestamp"),
                               skip_header=False)
    assert len(df) == 397
    assert df["rating"].dtype == np.float64
    assert stats["bad_by_reason"] == {"missing_item": 1, "non_numeric_rating": 1,
                                      "wrong_field_count": 1}
    with pytest.raises(BadFileError, match=r"r\.csv: 3 of 400 .*line 4 \(wrong_field_count"):
        read_csv_table(path, columns=("item", "user", "rating", "timestamp"),
                       required=("item", "user"), numeric=("rating", "timestamp"),
                       skip_header=False, max_bad_share=0.005)


def _rows() -> list[str]:
    rows = [f"i{k},u{k},{k % 5 + 1}.0,{1000 + k}" for k in range(200)]
    rows[7] = "i7,u7,5.0,1007,extra"  # line 8: too many fields
    rows[50] = "i50,u50,,1050"  # line 51: empty rating
    rows.insert(20, "")  # a blank line, not counted
    return rows


@pytest.mark.parametrize("variant", ["plain", "crlf", "no_final_newline", "gzip", "quoted"])
def test_fast_and_csv_module_paths_agree(tmp_path: Path, variant: str) -> None:
    rows = _rows()
    if variant == "quoted":  # a quote character forces the csv-module path
        rows[0] = '"i0",u0,1.0,1000'
    text = ("\r\n" if variant == "crlf" else "\n").join(rows)
    text += "" if variant == "no_final_newline" else "\n"
    path = tmp_path / ("r.csv.gz" if variant == "gzip" else "r.csv")
    if variant == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_bytes(text.encode())
    df, stats = read_csv_table(path, columns=COLS, required=("item", "user"),
                               numeric=("rating", "timestamp"), skip_header=False,
                               max_bad_share=0.05)
    assert stats["lines"] == 200 and stats["bad_lines"] == 2
    assert stats["bad_by_reason"] == {"non_numeric_rating": 1, "wrong_field_count": 1}
    assert df["item"].tolist()[:3] == ["i0", "i1", "i2"]
    assert len(df) == 198
    assert df["timestamp"].sum() == sum(1000 + k for k in range(200)) - (1007 + 1050)
    with pytest.raises(BadFileError, match=r"line 8 \(wrong_field_count"):
        read_csv_table(path, columns=COLS, required=("item", "user"),
                       numeric=("rating", "timestamp"), skip_header=False, max_bad_share=0.005)


def test_header_is_skipped_and_numbers_count_from_it(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("user_id,parent_asin,rating,timestamp\nu,p,5.0,1\nu,q,x,2\n")
    with pytest.raises(BadFileError, match=r"1 of 2 lines .*line 3 \(non_numeric_r\)"):
        read_csv_table(path, columns=("u", "p", "r", "t"), required=("u", "p"),
                       numeric=("r", "t"), skip_header=True)
