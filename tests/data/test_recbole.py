"""Tests of the RecBole atomic-file source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from layerkd.data.readers import BadFileError
from layerkd.data.recbole import read_header
from layerkd.data.sources import LoadOptions, load_raw

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ITEM_HEADER = "item_id:token\ttitle:token_seq\tbrand:token\tcategories:token_seq"


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def test_recbole_inter_and_item(tmp_path: Path) -> None:
    _write(tmp_path / "Toys.inter", INTER_HEADER,
           ["u1\ti1\t5.0\t1400000000.7", "u1\ti2\t3\t1400000100", "u2\ti1\t4.0\t1400000200"])
    _write(tmp_path / "Toys.item", ITEM_HEADER,
           ['i1\tLego "Star" Cruiser &amp; Crew\tLego\tToys Building',
            "i2\t\tHasbro\tToys Games",
            "i3\t\t\tToys"])
    inter, items, stats = load_raw(tmp_path, "recbole", "Toys")
    assert inter.values.tolist() == [["u1", "i1", 5.0, 1_400_000_000],
                                     ["u1", "i2", 3.0, 1_400_000_100],
                                     ["u2", "i1", 4.0, 1_400_000_200]]
    assert inter["timestamp"].dtype == np.int64
    assert dict(zip(items["item_id"], items["title"], strict=True)) == {
        "i1": 'Lego "Star" Cruiser & Crew', "i2": "Hasbro", "i3": "Toys"}
    assert [f["file"] for f in stats["files"]] == ["Toys.inter", "Toys.item"]
    assert stats["items"]["fallback_by_source"] == {"brand": 1, "details": 1}


def test_recbole_without_rating_column_gives_nan(tmp_path: Path) -> None:
    _write(tmp_path / "X.inter", "user_id:token\titem_id:token\ttimestamp:float",
           ["u\ti\t10", "u\tj\t11"])
    inter, _, _ = load_raw(tmp_path, "recbole", "X", LoadOptions(allow_id_text=True))
    assert np.isnan(inter["rating"]).all()
    assert inter["timestamp"].tolist() == [10, 11]


def test_recbole_header_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.inter"
    _write(path, "user_id\titem_id:token", ["u\ti"])
    with pytest.raises(ValueError, match="not 'name:type'"):
        read_header(path)
    _write(tmp_path / "Y.inter", "user_id:token\titem_id:token\trating:float",
           ["u\ti\t1.0"])
    with pytest.raises(ValueError, match=r"lacks required fields \['timestamp'\]"):
        load_raw(tmp_path, "recbole", "Y")
    rows = [f"u{k}\ti{k}\t5.0\t{k}" for k in range(50)]
    rows[2] = "u2\ti2\tfive\t2"  # line 4 of the file (after the header)
    _write(tmp_path / "Z.inter", INTER_HEADER, rows)
    with pytest.raises(BadFileError, match=r"Z\.inter: 1 of 50 .*line 4 \(non_numeric_rating"):
        load_raw(tmp_path, "recbole", "Z", LoadOptions(allow_id_text=True))
