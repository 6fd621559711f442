"""The configuration: its schema (the one home of every default), loading, and the checks
beyond the schema, run before any work starts.

The schema (``config/schema.yaml``) rejects unknown keys and unknown method/strategy names and
gives every optional key its ``default``; :func:`load_config` fills them in exactly as
Snakemake's ``validate(config, schema, set_default=True)`` does. The checks here catch what a
schema cannot: a ``selection.k`` that does not fit the teacher, a strategy that cannot work
with ``k``, a method the pipeline cannot compute yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layerkd.selection.names import SelectionName
from layerkd.specs import PACKAGED, TINY

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

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
    "greedy",
)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def _schema() -> dict[str, Any]:
    import yaml

    if not SCHEMA.is_file():
        raise FileNotFoundError(f"config schema {SCHEMA} not found (run from a project checkout)")
    return yaml.safe_load(SCHEMA.read_text())


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's config update: nested dicts merge, any other value replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _fill(schema: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
    """Validate ``instance`` against ``schema``, setting every missing key that has a
    ``default`` (in place; nested objects whose default is ``{}`` get their own defaults)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, inst: Any, sch: Any) -> Any:
        if isinstance(inst, dict):
            for name, sub in properties.items():
                if "default" in sub:  # a copy: the schema's default object stays untouched
                    inst.setdefault(name, json.loads(json.dumps(sub["default"])))
        yield from check_properties(validator, properties, inst, sch)

    jsonschema.validators.extend(base, {"properties": set_defaults})(schema).validate(instance)
    return instance


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` against the schema, filling in every default (in place, as
    Snakemake's ``validate(..., set_default=True)``); returns it."""
    return _fill(_schema(), config)


def load_config(*paths: Path | str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config Snakemake would run: YAML files merged in order (then ``overrides``),
    validated with every default filled in, and checked."""
    import yaml

    config: dict[str, Any] = {}
    for p in paths:
        config = _merge(config, yaml.safe_load(Path(p).read_text()) or {})
    config = validate_config(_merge(config, overrides or {}))
    check_config(config)
    return config


def defaults(section: str, **overrides: Any) -> dict[str, Any]:
    """The schema defaults of a config section (dotted: ``teacher.finetune``), updated with
    ``overrides``: the settings a test or a script builds one stage from."""
    schema = _schema()
    node = schema
    for key in section.split("."):
        node = node["properties"][key]
    sub = {**node, "$defs": schema.get("$defs", {})}
    return _fill(sub, {}) | overrides


def teacher_layers(teacher: dict[str, Any]) -> int | None:
    """The teacher's layer count when it can be known without loading weights (``teacher``
    is the validated ``teacher`` section)."""
    model = teacher["model"]
    if model == TINY:
        return int(teacher["tiny"]["num_layers"])
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


def cache_needs_hidden(config: dict[str, Any]) -> bool:
    """Whether the teacher cache must keep every layer's hidden states: only a hidden-state
    loss (``distill.w_hidden > 0``) or compact students initialised from the teacher read
    them (they are L x H numbers per training sample)."""
    compact = "compact" in config["student"]["modes"]
    return config["distill"]["w_hidden"] > 0 or (
        compact and config["student"]["compact"]["init"] == "teacher"
    )


def selections(config: dict[str, Any]) -> list[SelectionName]:
    """Every selection: each method × strategy and each score-free baseline (pseudo-method
    ``none``; ``random`` once per repeat), for every k."""
    out = []
    for k in k_values(config):
        out += [SelectionName(m, s, k) for m in config["methods"] for s in config["strategies"]]
        for b in config["baselines"]:
            if b == "random":
                reps = config["selection"]["random_repeats"]
                out += [SelectionName("none", "random", k, r) for r in range(reps)]
            else:
                out.append(SelectionName("none", b, k))
    return out


def selection_names(config: dict[str, Any]) -> list[str]:
    """File stems of every selection (:attr:`SelectionName.stem`)."""
    return [s.stem for s in selections(config)]


def distilled_names(config: dict[str, Any]) -> list[str]:
    """The selections whose layer sets surely get a student: ``selection.distill`` lists
    ``{method}__{strategy}`` pairs (every k and every random repeat of a pair), or ``all``;
    with ``screen``, the baselines of ``selection.screen.baselines`` (the screen's best layer
    sets are added by the layersets checkpoint, once the screen has run)."""
    wanted = config["selection"]["distill"]
    chosen = selections(config)
    if wanted == "screen":
        keep = set(config["selection"]["screen"]["baselines"])
        chosen = [s for s in chosen if s.method == "none" and s.strategy in keep]
    elif wanted != "all":
        chosen = [s for s in chosen if s.pair in set(wanted)]
    return [s.stem for s in chosen]


# what an init-only screen reads of ``distill``: the validation subset, its scoring batch, autocast
SCREEN_INIT_KEYS = ("valid_samples", "batch_size", "autocast")


def screen_distill_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``distill`` settings the screen depends on: all of them but ``seeds`` when it trains
    (``selection.screen.steps`` > 0); at init only, just :data:`SCREEN_INIT_KEYS`, so that
    changing a training setting (``lr``, ``epochs``, ...) does not rerun an init-only screen.
    The screen fills the rest from the schema (:func:`defaults`)."""
    cfg = {k: v for k, v in config["distill"].items() if k != "seeds"}
    if config["selection"]["screen"]["steps"]:
        return cfg
    return {k: cfg[k] for k in SCREEN_INIT_KEYS}


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
    ft = config["teacher"]["finetune"]
    if n_layers is not None and ft["mode"] == "top":
        top = int(ft["top_layers"])
        if top > n_layers:
            raise ConfigError(
                f"teacher.finetune.top_layers={top} exceeds the teacher's {n_layers} layers"
            )
    wanted = config["selection"]["distill"]
    if wanted not in ("all", "screen"):
        known = {s.pair for s in selections(config)}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ConfigError(
                f"selection.distill: {unknown} are not among the configured selections "
                f"{sorted(known)} (methods × strategies, none × baselines)"
            )
    ev = config["eval"]
    if ev["primary"] not in ev["protocol"]:
        raise ConfigError(
            f"eval.primary={ev['primary']!r} is not in eval.protocol={ev['protocol']}"
        )
    names = [d["name"] for d in config["datasets"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"datasets: names must be unique, got {names}")


def settings(cls: Any, section: str, **overrides: Any) -> Any:
    """An instance of the dataclass ``cls`` built from the schema defaults of ``section``
    (the keys that are its fields) updated with ``overrides`` (which must supply any field
    the section does not have, such as a seed that comes from elsewhere)."""
    fields = cls.__dataclass_fields__
    values = {k: v for k, v in defaults(section).items() if k in fields}
    return cls(**(values | overrides))
