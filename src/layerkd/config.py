"""Checks of the configuration beyond its JSON schema, run before any work starts.

The schema (``config/schema.yaml``) rejects unknown keys and unknown method/strategy names;
these checks catch what a schema cannot: a ``selection.k`` that does not fit the teacher,
a strategy that cannot work with ``k``, a method the pipeline cannot compute yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layerkd.specs import PACKAGED, TINY

KNOWN_LAYERS = {PACKAGED: 30}
AVAILABLE_METHODS = (
    "fisher",
    "gradient",
    "taylor",
    "block_influence",
    "angular",
    "attention",
    "hybrid",
    "ablation",
)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def teacher_layers(teacher: dict[str, Any]) -> int | None:
    """The teacher's layer count when it can be known without loading weights."""
    model = teacher["model"]
    if model == TINY:
        return int(teacher.get("tiny", {}).get("num_layers", 4))
    if model in KNOWN_LAYERS:
        return KNOWN_LAYERS[model]
    cfg = Path(model) / "config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text())["num_hidden_layers"])
    return None


def k_values(config: dict[str, Any]) -> list[int]:
    """``selection.k`` as a list (it may be one integer or a list)."""
    k = config["selection"]["k"]
    return [int(v) for v in (k if isinstance(k, list) else [k])]


def selection_names(config: dict[str, Any]) -> list[str]:
    """File stems of every selection: ``{method}__{strategy}__k{k}``; the score-free baselines
    use the pseudo-method ``none``, and ``random`` repeats are ``none__random-{r}__k{k}``."""
    names = []
    for k in k_values(config):
        names += [f"{m}__{s}__k{k}" for m in config["methods"] for s in config["strategies"]]
        for b in config["baselines"]:
            if b == "random":
                reps = config["selection"].get("random_repeats", 1)
                names += [f"none__random-{r}__k{k}" for r in range(reps)]
            else:
                names.append(f"none__{b}__k{k}")
    return names


def distilled_names(config: dict[str, Any]) -> list[str]:
    """The selections whose layer sets get a student: ``selection.distill`` lists
    ``{method}__{strategy}`` pairs (every k and every random repeat of a pair), or ``all``."""
    wanted = config["selection"].get("distill", "all")
    names = selection_names(config)
    if wanted == "all":
        return names
    return [n for n in names if _pair(n) in set(wanted)]


def _pair(name: str) -> str:
    """``fisher__top_k__k8`` → ``fisher__top_k``; ``none__random-1__k8`` → ``none__random``."""
    method, strategy, _k = name.split("__")
    return f"{method}__{strategy.split('-')[0]}"


def check_config(config: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the key when the config cannot run."""
    n_layers = teacher_layers(config["teacher"])
    for k in k_values(config):
        if n_layers is not None and k >= n_layers:
            raise ConfigError(
                f"selection.k={k} must be smaller than the teacher's {n_layers} layers "
                f"(teacher.model={config['teacher']['model']!r})"
            )
        if k < 2 and {"strategic", "hybrid"} & set(config["strategies"]):
            raise ConfigError(f"selection.k={k}: strategies 'strategic' and 'hybrid' need k >= 2")
    for m in config["methods"]:
        if m not in AVAILABLE_METHODS:
            raise ConfigError(f"methods: {m!r} is not available (available: {AVAILABLE_METHODS})")
    if not config["strategies"] and not config["baselines"]:
        raise ConfigError("strategies and baselines are both empty: nothing to select")
    ft = config["teacher"].get("finetune", {})
    if n_layers is not None and ft.get("mode", "top") == "top":
        top = int(ft.get("top_layers", 2))
        if top > n_layers:
            raise ConfigError(
                f"teacher.finetune.top_layers={top} exceeds the teacher's {n_layers} layers"
            )
    wanted = config["selection"].get("distill", "all")
    if wanted != "all":
        known = {_pair(n) for n in selection_names(config)}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ConfigError(
                f"selection.distill: {unknown} are not among the configured selections "
                f"{sorted(known)} (methods × strategies, none × baselines)"
            )
    names = [d["name"] for d in config["datasets"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"datasets: names must be unique, got {names}")
