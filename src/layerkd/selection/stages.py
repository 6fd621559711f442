"""The selection stages as the pipeline calls them: one selection, then the distinct layer sets.

Only file reading and writing around the pure strategies of :mod:`layerkd.selection.strategies`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from layerkd.io import read_json, write_json
from layerkd.records import ChosenBy, LayersetRecord, SelectionRecord
from layerkd.selection.names import SelectionName, layerset_id
from layerkd.selection.strategies import RANDOM_SEARCH, select_layers


def select_stage(
    *, scores: list[Path], stats: Path, selection: Path, name: str, seed: int
) -> SelectionRecord:
    """Write the selection ``name`` (``{method}__{strategy}[-{r}]__k{k}``) to ``selection``.

    ``scores`` holds the method's score file (none for the score-free baselines); ``stats`` is
    ``teacher/cache_stats.npz`` (layer count, and angular distances for ``block``).
    """
    sel = SelectionName.parse(name)
    with np.load(stats) as z:
        n_layers = len(z["sum_fisher"])
        angular = z["angular_distance"] if sel.strategy == "block" else None
    normalised = None
    if scores:
        rec = read_json(scores[0])
        normalised = np.asarray(rec["normalised"], dtype=float)  # ablation's raw can be < 0
        n_layers = int(rec["n_layers"])
    repeat = sel.repeat or 0
    layers = select_layers(
        sel.strategy,
        sel.k,
        n_layers,
        normalised,
        seed=seed,
        repeat=repeat,
        angular_distance=angular,
        method=sel.method,
    )
    out: SelectionRecord = {
        "method": sel.method,
        "strategy": sel.strategy,
        "repeat": repeat,
        "k": sel.k,
        "n_layers": n_layers,
        "layers": layers,
        "layerset": layerset_id(layers, n_layers),
    }
    write_json(selection, out)
    return out


def _screen_rows(screen_csv: Path) -> list[dict[str, str]]:
    """The rows of one screen table (``screen/k{k}.csv``), best screen score first."""
    with open(screen_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"layerset", "rank"} - set(rows[0] if rows else {})
    if not rows or missing:
        raise ValueError(f"{screen_csv}: not a screen table (no rows, or missing {missing})")
    return sorted(rows, key=lambda r: int(r["rank"]))


def screen_choice(screen_csv: Path, top: int) -> list[str]:
    """The ``top`` best layer sets of one screen table (column ``rank``, 1 = best) among those a
    selection chose (a set only the random search drew is not a candidate)."""
    rows = [r for r in _screen_rows(screen_csv) if r.get("selections") != RANDOM_SEARCH]
    return [r["layerset"] for r in rows[:top]]


def random_search_choice(screen_csv: Path) -> tuple[str, list[int]] | None:
    """The best random-search set of one screen table (layer set id, layers), or ``None`` when
    the screen ran without ``selection.random_search``."""
    rows = [r for r in _screen_rows(screen_csv) if r.get("random_search") == "True"]
    if not rows:
        return None
    return rows[0]["layerset"], [int(x) for x in rows[0]["layers"].split("-")]


def layersets_stage(
    *,
    selections: list[Path],
    every_selection: list[Path],
    layersets: Path,
    distilled: list[str],
    screens: list[Path] | None = None,
    top: int = 0,
    random_search: bool = False,
) -> dict[str, list[ChosenBy]]:
    """Write one ``{layerset}.json`` per distinct layer set to distil into ``layersets``,
    listing the (method, strategy) selections that chose it, so each distinct set is distilled
    once; returns those lists by layer set id.

    The sets are those of the ``selections`` named ``distilled`` and, with ``top`` > 0
    (``selection.distill: screen``), the ``top`` best of each of the ``screens`` tables: a
    screened set is credited to every selection in ``every_selection`` that chose it. Otherwise
    ``screens`` and ``every_selection`` are inputs only so that they exist (the screen runs before
    any student, whatever ``selection.distill`` says). With ``random_search`` the best
    random-search set of each screen is distilled too, credited to ``none/random_search``."""
    if sorted(p.stem for p in selections) != sorted(distilled):
        raise ValueError(f"layersets: selection files {selections} are not {distilled}")
    chosen = [read_json(p) for p in selections]
    if screens and top:
        best = {name for path in screens for name in screen_choice(path, top)}
        every = [read_json(p) for p in every_selection]
        found = {sel["layerset"] for sel in every}
        if best - found:
            raise ValueError(f"layersets: screened sets {sorted(best - found)} match no selection")
        picked = best | {sel["layerset"] for sel in chosen}
        chosen = [sel for sel in every if sel["layerset"] in picked]
    groups: dict[str, LayersetRecord] = {}
    for sel in chosen:
        g = groups.setdefault(
            sel["layerset"],
            {"layerset": sel["layerset"], "layers": sel["layers"], "selections": []},
        )
        g["selections"].append(
            {"method": sel["method"], "strategy": sel["strategy"], "repeat": sel.get("repeat", 0)}
        )
    for path in (screens or []) if random_search else []:
        hit = random_search_choice(path)
        if hit is None:
            raise ValueError(f"{path}: selection.random_search is on but the screen drew no set")
        name, layers = hit
        g = groups.setdefault(name, {"layerset": name, "layers": layers, "selections": []})
        g["selections"].append({"method": "none", "strategy": "random_search", "repeat": 0})
    layersets.mkdir(parents=True, exist_ok=True)
    for name, g in sorted(groups.items()):
        write_json(layersets / f"{name}.json", g)
    return {name: g["selections"] for name, g in groups.items()}
