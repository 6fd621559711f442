"""Typed records of the small JSON files the stages write and the report reads.

``Record`` is the loose form (any JSON object); the ``TypedDict`` classes below name the keys
each file is guaranteed to hold, so a reader sees what it may rely on.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

Record = dict[str, Any]


class ScoreRecord(TypedDict):
    """``results/{dataset}/scores/{method}.json``."""

    method: str
    n_layers: int
    n_samples: int
    raw: list[float]
    normalised: list[float]
    concentration_ratio: float
    upper_lower_ratio: float
    upper_lower_ci: NotRequired[list[float]]  # 95% interval over calibration samples
    full_loss: NotRequired[float]  # ablation only
    negative_layers: NotRequired[int]  # ablation only


class SelectionRecord(TypedDict):
    """``results/{dataset}/selections/{method}__{strategy}[-{r}]__k{k}.json``."""

    method: str
    strategy: str
    repeat: int
    k: int
    n_layers: int
    layers: list[int]
    layerset: str


class ChosenBy(TypedDict):
    """One selection that chose a layer set (inside a :class:`LayersetRecord`)."""

    method: str
    strategy: str
    repeat: int


class LayersetRecord(TypedDict):
    """``results/{dataset}/layersets/{layerset}.json``: a distinct layer set and every
    selection that chose it."""

    layerset: str
    layers: list[int]
    selections: list[ChosenBy]


class EvalRecord(TypedDict):
    """``results/{dataset}/eval/{model}.json`` (teacher, student or reference ranker)."""

    model: str
    kind: str  # teacher | student | reference
    n_users: int
    n_candidates: int
    candidates_sha256: str
    metrics: dict[str, float]
    ci: dict[str, list[float]]
    user_ids: list[str]
    per_user: dict[str, list[float]]
    layers: NotRequired[list[int] | None]
    layerset: NotRequired[str | None]
    mode: NotRequired[str | None]
    seed: NotRequired[int | None]
    selections: NotRequired[list[ChosenBy] | None]
    params: NotRequired[int]
