"""Layer selection: keep ``k`` of a teacher's ``L`` layers (0-based indices).

Every strategy returns exactly ``k`` unique layer indices in ``[0, L)``, sorted ascending, and
is deterministic: the same input always gives the same layers. Conventions:

* Ranking by score is always descending score, ties broken by the lower layer index.
* ``top_k``: the first ``k`` layers of that ranking.
* ``distributed``: ``np.array_split(range(L), 3)`` gives the bottom / middle / top bands (when
  ``L % 3 != 0`` the *lower* bands get one extra layer, e.g. L=32 -> 11/11/10). The band quotas
  are 20% / 30% / 50% of ``k``, rounded by largest remainder (exact integer arithmetic; equal
  remainders go to the band with the larger weight: top, then middle, then bottom). A band takes
  its best-ranked ``min(quota, size)`` layers; any surplus of a band smaller than its quota is
  filled by the best-ranked layers left in the other bands.
* ``strategic``: keeps layers ``0`` and ``L-1`` (needs ``k >= 2``), walks the ranking adding each
  layer not adjacent (index distance 1) to a kept one, then, if still short, fills by ranking.
* ``hybrid``: Borda count over the ``top_k``, ``distributed`` and ``strategic`` picks. Each pick
  list is ranked by score (the ranking above); position ``r`` (0-based) earns ``k - r`` points,
  layers missing from a list earn 0. The ``k`` layers with most points are kept; ties go to the
  higher score, then the lower index. Needs ``k >= 2`` (because of ``strategic``).
* ``block`` (Gromov et al., "The unreasonable ineffectiveness of the deeper layers"): drop the
  contiguous block of ``n = L - k`` layers starting at ``s`` for which ``block_distance[s]`` is
  smallest, where ``block_distance`` has shape ``(k + 1,)`` (= ``L - n + 1``) and
  ``block_distance[s]`` is the angular distance between the *input* of layer ``s`` and the
  *output* of layer ``s + n - 1``. Alternatively pass ``angular_distance``, an ``(L+1, L+1)``
  matrix over the hidden states ``h_0`` (embeddings = input of layer 0) ... ``h_L`` (output of
  the last layer); then ``block_distance[s] = angular_distance[s, s + n]``. Without either, fall
  back to the scores: drop the block with the smallest total score. Ties: the lowest start.
* Baselines (pseudo-method ``none``) ignore ``scores`` entirely: ``first_k`` = ``0..k-1``;
  ``last_k`` = ``L-k..L-1``; ``uniform`` = ``floor(i (L-1)/(k-1) + 1/2)`` for ``i < k`` (linspace
  rounded half up, exact integers; contains 0 and L-1 when ``k >= 2``, ``[0]`` when ``k == 1``);
  ``random`` = ``k`` layers without replacement from ``np.random.default_rng([seed, repeat])``,
  so repeats ``0..R-1`` give ``R`` (generally different) layer sets, each stable per seed.
* Random search (:func:`random_search_sets`, not a strategy): ``R`` distinct random layer sets
  that the screen scores beside the methods' sets, so that the best adaptive set is compared
  with the best of as many random sets (a search of the same budget).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BASELINES",
    "RANDOM_SEARCH",
    "SCORE_STRATEGIES",
    "STRATEGIES",
    "SelectionError",
    "random_search_sets",
    "select_layers",
]

BASELINES: tuple[str, ...] = ("first_k", "last_k", "uniform", "random")
#: the selection label of the best random-search set (distilled as a baseline)
RANDOM_SEARCH = "none/random_search"
SCORE_STRATEGIES: tuple[str, ...] = ("top_k", "distributed", "strategic", "hybrid", "block")
BAND_WEIGHTS: tuple[int, int, int] = (2, 3, 5)  # tenths of k for bottom / middle / top


class SelectionError(ValueError):
    """Invalid input to a selection (bad k, bad scores, unknown strategy, bad layer set id)."""


@dataclass(frozen=True)
class Request:
    """A validated selection request handed to a strategy function."""

    k: int
    n_layers: int
    scores: np.ndarray | None  # validated, float64, shape (L,); None only for baselines / block
    seed: int = 0
    repeat: int = 0
    block_distance: np.ndarray | None = None  # validated, shape (k + 1,)

    def ranked(self, candidates: range | list[int] | np.ndarray) -> list[int]:
        """Candidates by descending score, ties broken by the lower layer index."""
        assert self.scores is not None
        s = self.scores
        return sorted((int(c) for c in candidates), key=lambda i: (-s[i], i))


def _check_values(values: np.ndarray, what: str, unit: str) -> None:
    """Raise on the first NaN, infinite or negative entry, naming ``unit`` and its index."""
    for i, v in enumerate(values):
        if math.isnan(v):
            raise SelectionError(f"{what} at {unit} {i} are NaN")
        if math.isinf(v):
            raise SelectionError(f"{what} at {unit} {i} are not finite ({v})")
        if v < 0:
            raise SelectionError(f"{what} at {unit} {i} are negative ({v:g})")


def as_vector(values: object, what: str, length: int | None, unit: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise SelectionError(f"{what} must be a 1-D array, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise SelectionError(f"{what} have {arr.shape[0]} entries but {length} are needed")
    _check_values(arr, what, unit)
    return arr


def _top_k(req: Request) -> list[int]:
    return req.ranked(range(req.n_layers))[: req.k]


def band_quotas(k: int) -> list[int]:
    """Largest-remainder split of ``k`` into 20% / 30% / 50% (bottom / middle / top)."""
    exact = [k * w for w in BAND_WEIGHTS]  # in tenths
    quotas = [e // 10 for e in exact]
    order = sorted(range(3), key=lambda b: (-(exact[b] % 10), -BAND_WEIGHTS[b]))
    for b in order[: k - sum(quotas)]:
        quotas[b] += 1
    return quotas


def bands(n_layers: int) -> list[list[int]]:
    """Bottom / middle / top thirds of the depth (``np.array_split``: lower bands get extras)."""
    return [[int(i) for i in band] for band in np.array_split(np.arange(n_layers), 3)]


def _distributed(req: Request) -> list[int]:
    kept: list[int] = []
    for band, quota in zip(bands(req.n_layers), band_quotas(req.k), strict=True):
        kept += req.ranked(band)[:quota]
    rest = [i for i in req.ranked(range(req.n_layers)) if i not in kept]
    return kept + rest[: req.k - len(kept)]


def _strategic(req: Request) -> list[int]:
    kept = [0, req.n_layers - 1]
    ranking = [i for i in req.ranked(range(req.n_layers)) if i not in kept]
    for i in ranking:
        if len(kept) == req.k:
            break
        if all(abs(i - j) > 1 for j in kept):
            kept.append(i)
    rest = [i for i in ranking if i not in kept]
    return kept + rest[: req.k - len(kept)]


def _hybrid(req: Request) -> list[int]:
    assert req.scores is not None
    points = np.zeros(req.n_layers, dtype=np.int64)
    for pick in (_top_k, _distributed, _strategic):
        for r, layer in enumerate(req.ranked(pick(req))):
            points[layer] += req.k - r
    s = req.scores
    return sorted(range(req.n_layers), key=lambda i: (-points[i], -s[i], i))[: req.k]


def _block(req: Request) -> list[int]:
    n = req.n_layers - req.k
    if req.block_distance is not None:
        cost = req.block_distance
    else:
        assert req.scores is not None
        window = np.lib.stride_tricks.sliding_window_view(req.scores, n)
        cost = window.sum(axis=1)
    start = int(np.argmin(cost))  # first minimum: the lowest start wins ties
    return [i for i in range(req.n_layers) if not start <= i < start + n]


def _first_k(req: Request) -> list[int]:
    return list(range(req.k))


def _last_k(req: Request) -> list[int]:
    return list(range(req.n_layers - req.k, req.n_layers))


def _uniform(req: Request) -> list[int]:
    if req.k == 1:
        return [0]
    d = req.k - 1
    return [(2 * i * (req.n_layers - 1) + d) // (2 * d) for i in range(req.k)]


def _random(req: Request) -> list[int]:
    rng = np.random.default_rng([req.seed, req.repeat])
    return [int(i) for i in rng.choice(req.n_layers, size=req.k, replace=False)]


def random_search_sets(n_layers: int, k: int, count: int, seed: int) -> list[list[int]]:
    """``count`` distinct random ``k``-layer sets (each sorted), in the order drawn from
    ``np.random.default_rng([seed, k, 1])`` (a stream of its own: the ``random`` baseline uses
    ``[seed, repeat]``); at most every one of the ``C(L, k)`` sets."""
    if not 1 <= k <= n_layers:
        raise SelectionError(f"random search: k = {k} must be in [1, {n_layers}]")
    rng = np.random.default_rng([seed, k, 1])
    out: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    while len(out) < min(count, math.comb(n_layers, k)):
        draw = tuple(sorted(int(i) for i in rng.choice(n_layers, size=k, replace=False)))
        if draw not in seen:
            seen.add(draw)
            out.append(list(draw))
    return out


STRATEGIES: dict[str, Callable[[Request], list[int]]] = {
    "top_k": _top_k,
    "distributed": _distributed,
    "strategic": _strategic,
    "hybrid": _hybrid,
    "block": _block,
    "first_k": _first_k,
    "last_k": _last_k,
    "uniform": _uniform,
    "random": _random,
}


def _block_distance(
    block_distance: np.ndarray | None, angular_distance: np.ndarray | None, k: int, n_layers: int
) -> np.ndarray | None:
    if block_distance is not None and angular_distance is not None:
        raise SelectionError("pass block_distance or angular_distance, not both")
    if angular_distance is not None:
        mat = np.asarray(angular_distance, dtype=np.float64)
        if mat.shape != (n_layers + 1, n_layers + 1):
            raise SelectionError(
                f"angular_distance must have shape ({n_layers + 1}, {n_layers + 1}) for "
                f"{n_layers} layers (hidden states h_0..h_L), got {mat.shape}"
            )
        n = n_layers - k
        block_distance = np.array([mat[s, s + n] for s in range(k + 1)])
    if block_distance is None:
        return None
    return as_vector(block_distance, "block distances", k + 1, "block start")


def select_layers(
    strategy: str,
    k: int,
    n_layers: int,
    scores: np.ndarray | None = None,
    *,
    seed: int = 0,
    repeat: int = 0,
    block_distance: np.ndarray | None = None,
    angular_distance: np.ndarray | None = None,
    method: str = "?",
) -> list[int]:
    """Keep ``k`` of ``n_layers`` teacher layers with ``strategy`` (see the module docstring).

    ``scores`` (shape ``(n_layers,)``, finite, non-negative; raw or normalised, only the order
    and, for ``block``, the sums matter) are required by every strategy except the baselines
    and ``block`` given ``block_distance``/``angular_distance``; baselines ignore them.
    ``method`` only names the score source in error messages. Returns sorted Python ints.
    """
    if strategy not in STRATEGIES:
        valid = ", ".join(sorted(STRATEGIES))
        raise SelectionError(f"unknown strategy {strategy!r} (method {method!r}); valid: {valid}")
    where = f"(method {method!r}, strategy {strategy!r})"
    try:
        k, n_layers, seed, repeat = (operator.index(v) for v in (k, n_layers, seed, repeat))
    except TypeError:
        raise SelectionError(f"k, n_layers, seed and repeat must be integers {where}") from None
    if k < 1:
        raise SelectionError(f"k={k} must be at least 1 {where}")
    if k >= n_layers:
        raise SelectionError(f"k={k} must be smaller than the teacher's {n_layers} layers {where}")
    if strategy in ("strategic", "hybrid") and k < 2:
        raise SelectionError(
            f"k={k} is too small: strategy {strategy!r} needs k >= 2 to keep the first and last "
            f"layer {where}"
        )
    if seed < 0 or repeat < 0:
        raise SelectionError(f"seed={seed} and repeat={repeat} must be non-negative {where}")
    try:
        bd = _block_distance(block_distance, angular_distance, k, n_layers)
    except SelectionError as err:
        raise SelectionError(f"{err} {where}") from None
    arr: np.ndarray | None = None
    if strategy in SCORE_STRATEGIES and not (strategy == "block" and bd is not None):
        if scores is None:
            raise SelectionError(f"strategy {strategy!r} needs scores, got none {where}")
        what = f"scores of method {method!r}"
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 1 or arr.shape[0] != n_layers:
            raise SelectionError(
                f"{what} have shape {arr.shape} but the teacher has {n_layers} layers "
                f"(strategy {strategy!r})"
            )
        try:
            _check_values(arr, what, "layer")
        except SelectionError as err:
            raise SelectionError(f"{err} (strategy {strategy!r})") from None
    req = Request(k, n_layers, arr, seed, repeat, bd)
    kept = sorted(int(i) for i in STRATEGIES[strategy](req))
    if len(set(kept)) != k or kept[0] < 0 or kept[-1] >= n_layers:  # internal invariant
        raise RuntimeError(f"strategy {strategy!r} returned an invalid layer set {kept}")
    return kept
