"""Tests of the bad-line accounting of raw file readers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from layerkd.data.readers import BadFileError, parse_literal, read_records


def _write_jsonl_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _good(i: int) -> str:
    return json.dumps({"user_id": f"u{i}", "parent_asin": f"p{i}", "rating": 5.0,
                       "timestamp": 1_600_000_000_000 + i})


def test_few_bad_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    lines = [_good(i) for i in range(300)]
    lines[10] = "{not json"
    lines[20] = json.dumps({"user_id": "u", "rating": 4.0, "timestamp": 1})  # no parent_asin
    lines[30] = json.dumps({"user_id": "u", "parent_asin": "p", "rating": "five",
                            "timestamp": 1})
    lines.insert(40, "")  # blank lines are neither records nor bad
    path = _write_jsonl_gz(tmp_path / "ok.jsonl.gz", lines)
    recs, stats = read_records(path, required=("user_id", "parent_asin"),
                               numeric=("rating", "timestamp"))
    assert len(recs) == 297
    assert stats == {"file": "ok.jsonl.gz", "lines": 300, "bad_lines": 3,
                     "bad_by_reason": {"malformed": 1, "missing_parent_asin": 1,
                                       "non_numeric_rating": 1}}


def test_too_many_bad_lines_raise_naming_file_and_first_bad_line(tmp_path: Path) -> None:
    lines = [_good(i) for i in range(100)]
    lines[6] = "garbage"  # line 7
    lines[50] = '{"user_id": "u"'
    path = _write_jsonl_gz(tmp_path / "dirty.jsonl.gz", lines)
    with pytest.raises(BadFileError, match=r"dirty\.jsonl\.gz: 2 of 100 lines.*line 7 \(malformed"):
        read_records(path, required=("user_id",))
    # the share is configurable
    recs, stats = read_records(path, required=("user_id",), max_bad_share=0.05)
    assert len(recs) == 98 and stats["bad_lines"] == 2


def test_python_literals_are_parsed_safely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    lines = [repr({"asin": f"a{i}", "title": "T"}) for i in range(200)]
    lines[3] = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path = tmp_path / "meta.json"
    path.write_text("\n".join(lines) + "\n")
    recs, stats = read_records(path, required=("asin",), parse=parse_literal)
    assert len(recs) == 199
    assert stats["bad_by_reason"] == {"malformed": 1}
    assert not marker.exists()
