"""Line-level readers for raw review and metadata files that count and skip bad lines.

A line is bad when it does not parse, is not a record, lacks a required field (absent, null or
empty) or has a non-numeric value in a numeric field. Bad lines are counted by reason and skipped;
when more than ``max_bad_share`` of a file's non-blank lines are bad the file is rejected with a
:class:`BadFileError` naming the file and its first bad line (1-based).
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DEFAULT_MAX_BAD_SHARE = 0.01


class BadFileError(ValueError):
    """A raw file with more bad lines than the allowed share."""


def open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file (by the ``.gz`` suffix) for reading as UTF-8."""
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115


def parse_json(line: str) -> Any:
    """Parse one JSON line."""
    return json.loads(line)


def parse_literal(line: str) -> Any:
    """Parse one Python-literal line (the 2014 metadata format) safely: ``ast.literal_eval``."""
    return ast.literal_eval(line)


def parse_json_or_literal(line: str) -> Any:
    """Parse JSON, falling back to a Python literal (2014 files mix the two conventions)."""
    try:
        return json.loads(line)
    except ValueError:
        return ast.literal_eval(line)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


class BadLineCounter:
    """Counts bad lines by reason and remembers the first one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lines = 0
        self.bad: dict[str, int] = {}
        self.first_bad: tuple[int, str] | None = None

    def add_bad(self, lineno: int, reason: str) -> None:
        """Record bad line ``lineno`` (1-based) for ``reason``."""
        self.bad[reason] = self.bad.get(reason, 0) + 1
        if self.first_bad is None:
            self.first_bad = (lineno, reason)

    @property
    def n_bad(self) -> int:
        """Total bad lines."""
        return sum(self.bad.values())

    def check(self, max_bad_share: float) -> dict[str, Any]:
        """Raise :class:`BadFileError` above ``max_bad_share``; else return the counts."""
        share = self.n_bad / self.lines if self.lines else 0.0
        if share > max_bad_share and self.first_bad is not None:
            lineno, reason = self.first_bad
            raise BadFileError(
                f"{self.path}: {self.n_bad} of {self.lines} lines are bad ({share:.2%} > allowed "
                f"{max_bad_share:.2%}); first bad line is line {lineno} ({reason}); "
                f"bad lines by reason: {self.bad}"
            )
        return {"file": self.path.name, "lines": self.lines, "bad_lines": self.n_bad,
                "bad_by_reason": dict(sorted(self.bad.items()))}


def check_record(
    rec: Any, required: Iterable[str], numeric: Iterable[str]
) -> str | None:
    """Why ``rec`` is bad (``not_a_record``, ``missing_<f>``, ``non_numeric_<f>``), or None."""
    if not isinstance(rec, dict):
        return "not_a_record"
    for field in required:
        if _is_missing(rec.get(field)):
            return f"missing_{field}"
    for field in numeric:
        if not _is_number(rec.get(field)):
            return f"non_numeric_{field}"
    return None


def read_records(
    path: Path,
    *,
    required: tuple[str, ...],
    numeric: tuple[str, ...] = (),
    parse: Callable[[str], Any] = parse_json,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read a (gzipped) one-record-per-line file; returns good records and the line counts."""
    counter = BadLineCounter(path)
    out: list[dict[str, Any]] = []
    with open_text(Path(path)) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            counter.lines += 1
            try:
                rec = parse(line)
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                counter.add_bad(lineno, "malformed")
                continue
            reason = check_record(rec, required, numeric)
            if reason is not None:
                counter.add_bad(lineno, reason)
                continue
            out.append(rec)
    return out, counter.check(max_bad_share)
