"""Names of layer sets and selections: the one place that formats and parses them.

* A layer set is named by its sorted kept layers, ``[0, 8, 31] -> "L00-08-31"``.
* A student is named ``{layerset}__{mode}__s{seed}`` (:class:`StudentName`): one per distinct
  layer set, student mode and distillation seed.
* A selection is named ``{method}__{strategy}[-{repeat}]__k{k}`` (a file stem and a Snakemake
  target): the score-free baselines use the pseudo-method ``none``, and only the ``random``
  baseline carries a repeat (``none__random-1__k8``). Its ``pair`` ``{method}__{strategy}``
  (``none__random`` for every repeat) is what ``selection.distill`` lists, and its ``label``
  ``{method}/{strategy}[-{repeat}]`` is what the report prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from layerkd.selection.strategies import SelectionError

__all__ = ["SelectionName", "StudentName", "layerset_id", "parse_layerset_id"]

_NAME_RE = re.compile(
    r"(?P<method>[a-z_]+)__(?P<strategy>[a-z_]+)(?:-(?P<repeat>\d+))?__k(?P<k>\d+)"
)
_REPEATED = ("random",)
_STUDENT_RE = re.compile(r"(?P<layerset>L[0-9-]+)__(?P<mode>[a-z]+)__s(?P<seed>\d+)")


@dataclass(frozen=True, order=True)
class SelectionName:
    """One selection: ``method`` (``none`` for a baseline), ``strategy``, ``k`` and, for the
    ``random`` baseline only, ``repeat``."""

    method: str
    strategy: str
    k: int
    repeat: int | None = None

    def __post_init__(self) -> None:
        if (self.repeat is not None) != (self.strategy in _REPEATED):
            raise SelectionError(
                f"selection {self.method}/{self.strategy}: a repeat goes with strategy random "
                f"and only with it (got repeat={self.repeat})"
            )

    @property
    def strategy_repeat(self) -> str:
        """The strategy with its repeat: ``top_k``, ``random-1``."""
        return self.strategy if self.repeat is None else f"{self.strategy}-{self.repeat}"

    @property
    def stem(self) -> str:
        """``fisher__top_k__k8``, ``none__random-1__k8``: file stem and Snakemake target."""
        return f"{self.method}__{self.strategy_repeat}__k{self.k}"

    @property
    def pair(self) -> str:
        """``{method}__{strategy}`` without repeat or k, as ``selection.distill`` lists it."""
        return f"{self.method}__{self.strategy}"

    @property
    def label(self) -> str:
        """``method/strategy`` (``none/random-1`` for a random repeat) for tables."""
        return f"{self.method}/{self.strategy_repeat}"

    @classmethod
    def parse(cls, stem: str) -> SelectionName:
        """Inverse of :attr:`stem`."""
        m = _NAME_RE.fullmatch(stem)
        if m is None:
            raise SelectionError(
                f"not a selection name: {stem!r} (expected method__strategy__kK, "
                "e.g. fisher__top_k__k8 or none__random-0__k8)"
            )
        repeat = m["repeat"]
        return cls(m["method"], m["strategy"], int(m["k"]), None if repeat is None else int(repeat))

    @classmethod
    def of(cls, record: dict[str, Any], k: int | None = None) -> SelectionName:
        """The name of a selection record (``method``, ``strategy``, ``repeat``, ``k``); a
        record without ``k`` (the list a layer set keeps) takes ``k``, or 0."""
        strategy = record["strategy"]
        repeat = int(record.get("repeat") or 0) if strategy in _REPEATED else None
        return cls(record["method"], strategy, int(record.get("k", k or 0)), repeat)


@dataclass(frozen=True, order=True)
class StudentName:
    """One student: the layer set it keeps, its mode (``keep``/``compact``), its seed."""

    layerset: str
    mode: str
    seed: int

    @property
    def stem(self) -> str:
        """``L00-03-05__keep__s0``: the student's directory and evaluation file name."""
        return f"{self.layerset}__{self.mode}__s{self.seed}"

    @property
    def pooled(self) -> str:
        """``L00-03-05__keep``: the name of this student's seeds taken together."""
        return f"{self.layerset}__{self.mode}"

    @classmethod
    def parse(cls, stem: str) -> StudentName:
        """Inverse of :attr:`stem`."""
        m = _STUDENT_RE.fullmatch(stem)
        if m is None:
            raise SelectionError(f"not a student name: {stem!r} (expected e.g. L00-03__keep__s0)")
        return cls(m["layerset"], m["mode"], int(m["seed"]))


def layerset_id(layers: list[int], n_layers: int | None = None) -> str:
    """Name a layer set, e.g. ``[0, 8, 31] -> "L00-08-31"`` (sorted, zero-padded).

    Width is 2 digits, 3 if ``n_layers > 100``; without ``n_layers`` the width is the digits of
    the largest layer (at least 2). Teachers with > 100 layers should always pass ``n_layers``
    so that all their ids share one width.
    """
    kept = sorted(int(i) for i in layers)
    if not kept:
        raise SelectionError("a layer set needs at least one layer")
    if len(set(kept)) != len(kept) or kept[0] < 0:
        raise SelectionError(f"layers must be unique and non-negative, got {list(layers)}")
    if n_layers is not None and kept[-1] >= n_layers:
        raise SelectionError(f"layer {kept[-1]} is out of range for {n_layers} layers")
    top = n_layers - 1 if n_layers is not None else kept[-1]
    width = max(2, len(str(top)))
    return "L" + "-".join(f"{i:0{width}d}" for i in kept)


_ID_RE = re.compile(r"L(\d{2,})(?:-(\d{2,}))*")


def parse_layerset_id(s: str) -> list[int]:
    """Inverse of :func:`layerset_id`: ``"L00-08-31" -> [0, 8, 31]``."""
    if not _ID_RE.fullmatch(s):
        raise SelectionError(f"not a layer set id: {s!r} (expected e.g. 'L00-08-31')")
    parts = s[1:].split("-")
    if len({len(p) for p in parts}) != 1:
        raise SelectionError(f"layer set id {s!r} mixes digit widths")
    layers = [int(p) for p in parts]
    if any(a >= b for a, b in zip(layers, layers[1:], strict=False)):
        raise SelectionError(f"layer set id {s!r} is not strictly increasing")
    return layers
