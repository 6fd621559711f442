"""The layer-set screen: every distinct keep layer set of one k, scored before it is distilled.

The teacher is loaded once; each distinct layer set chosen by any selection at this k becomes a
keep student in memory (the teacher's embeddings, the kept layers and heads, copied: the
teacher itself is never changed), scored by validation NDCG@5 on the fixed validation subset
that distillation validates on (``distill.valid_samples``, the same users for every set), at
initialisation and after ``steps`` distillation steps (the distillation loss and settings of
``distill``, seed 0, an lr schedule over the screen's steps). ``selection.distill: screen``
then distils the best sets (:func:`layerkd.selection.stages.screen_choice`); the report
measures whether the screen predicts the distilled result (:mod:`layerkd.report.screen`).

With ``selection.random_search`` the screen also scores ``R`` seeded random layer sets, ``R``
the number of distinct sets the importance methods proposed at this k
(:func:`~layerkd.selection.strategies.random_search_sets`): the best of them by screen score
is distilled as the ``none/random_search`` baseline, so the adaptive choice (the best of the
methods' sets) is compared with a search of the same budget.

Output ``results/{dataset}/screen/k{k}.csv``: one row per layer set with ``layerset``,
``layers``, ``selections`` (``method/strategy`` that chose it, ``;``-separated; a set only the
random search drew reads ``none/random_search``), ``random_search`` (drawn by the random
search), ``score_step{s}`` per checkpoint (0 and ``steps``), ``screen_score`` (the last
checkpoint), ``rank`` (1 = best) and ``seconds``.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from layerkd.config import defaults
from layerkd.io import atomic_path, read_json
from layerkd.models.backbone import LayerSubset, keep_layers
from layerkd.models.fit import Run, autocast, step
from layerkd.models.recmodel import RecModel, load_features, load_recmodel
from layerkd.models.samples import half_rows, load_split
from layerkd.models.train import epoch_order, seed_everything
from layerkd.runtime import device_of
from layerkd.selection.names import SelectionName, layerset_id
from layerkd.selection.strategies import RANDOM_SEARCH, random_search_sets
from layerkd.student.distill import DistillParams, distill_setup
from layerkd.teacher.store import TeacherCache

log = logging.getLogger(__name__)


def keep_copy(teacher: RecModel, layers: list[int]) -> RecModel:
    """A keep student of ``teacher``: a deep copy holding only the decoder layers ``layers``
    (renumbered, config updated), copied without copying the layers it drops."""
    with LayerSubset(teacher.lm, layers):
        student = copy.deepcopy(teacher)
    keep_layers(student.lm, list(range(len(layers))))  # renumber the copied layers
    return student


def layer_sets(selections: list[Path], k: int) -> dict[str, dict[str, Any]]:
    """The distinct layer sets of the selection files with ``k`` layers: by layer set id, its
    layers and the ``method/strategy`` labels of the selections that chose it."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(selections):
        sel = read_json(p)
        if int(sel["k"]) != k:
            continue
        g = out.setdefault(sel["layerset"], {"layers": list(sel["layers"]), "selections": []})
        g["selections"].append(SelectionName.of(sel).label)
    if not out:
        raise ValueError(f"screen: no selection among {len(selections)} files has k = {k}")
    return out


def add_random_search(
    sets: dict[str, dict[str, Any]], n_layers: int, k: int, seed: int
) -> dict[str, dict[str, Any]]:
    """``sets`` (see :func:`layer_sets`) plus the random-search sets: as many distinct random
    ``k``-layer sets as the importance methods proposed distinct sets. Every set gets
    ``random_search`` (whether the search drew it); a drawn set no selection chose is labelled
    :data:`RANDOM_SEARCH`."""
    proposed = sum(any(not x.startswith("none/") for x in g["selections"]) for g in sets.values())
    out = {name: {**g, "random_search": False} for name, g in sets.items()}
    for layers in random_search_sets(n_layers, k, proposed, seed):
        name = layerset_id(layers, n_layers)
        g = out.setdefault(name, {"layers": layers, "selections": [RANDOM_SEARCH]})
        g["random_search"] = True
    return out


def _score(task: Any, p: DistillParams, device: str) -> float:
    """Validation NDCG@5 under the autocast distillation validates with (bf16 on CUDA)."""
    with autocast(p.autocast, torch.device(device)):
        return task.evaluate()


def screen_scores(
    teacher: RecModel,
    sets: dict[str, dict[str, Any]],
    teacher_out: Any,
    train: Any,
    valid: Any,
    p: DistillParams,
    steps: int,
    device: str = "cpu",
) -> pd.DataFrame:
    """Score every layer set of ``sets`` (see :func:`layer_sets`): validation NDCG@5 of its
    keep student at init and after ``steps`` distillation steps with the settings ``p``."""
    checkpoints = [0] if steps == 0 else [0, steps]
    rows = []
    for name in tqdm(sorted(sets), desc="screen", unit="set"):
        t0 = time.perf_counter()
        layers = sets[name]["layers"]
        student = keep_copy(teacher, layers)
        task, nets, params = distill_setup(
            student, layers, teacher_out, train, valid, p, device=device
        )
        row: dict[str, Any] = {
            "layerset": name,
            "layers": "-".join(map(str, layers)),
            "selections": "; ".join(sets[name]["selections"]),
            "random_search": bool(sets[name].get("random_search", False)),
            "score_step0": _score(task, p, device),
        }
        if steps:
            seed_everything(p.seed)
            run = Run(nets, params, p, len(train), total_steps=steps)
            order: list[list[int]] = []
            epoch = 1
            while len(order) < steps * p.grad_accum:
                order += epoch_order(len(train), p.batch_size, p.seed, epoch)
                epoch += 1
            nets.train()
            for s in range(steps):
                step(task, run, order[s * p.grad_accum : (s + 1) * p.grad_accum])
            row[f"score_step{steps}"] = _score(task, p, device)
        row["seconds"] = time.perf_counter() - t0
        log.info("screen %s: %s", name, {c: row[f"score_step{c}"] for c in checkpoints})
        rows.append(row)
        del student, task, nets, params
    df = pd.DataFrame(rows)
    df["screen_score"] = df[f"score_step{checkpoints[-1]}"]
    order_cols = ["screen_score", "score_step0", "layerset"]
    df = df.sort_values(order_cols, ascending=[False, False, True]).reset_index(drop=True)
    df["rank"] = range(1, len(df) + 1)
    return df


def screen_plot(df: pd.DataFrame, png: Path, k: int) -> None:
    """Screen scores of every layer set, best first (one bar per checkpoint)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in df.columns if c.startswith("score_step")]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(df) + 2), 4))
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        ax.bar([x + i * width for x in range(len(df))], df[c], width, label=c.replace("_", " "))
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(df))])
    ax.set_xticklabels(df["layerset"], rotation=90, fontsize=6)
    ax.set_ylabel("validation NDCG@5")
    ax.set_title(f"Screen of every layer set at k = {k} (best first)")
    ax.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def screen_stage(
    *,
    teacher: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    cache: Path,
    selections: list[Path],
    csv: Path,
    png: Path,
    k: int,
    steps: int,
    random_search: bool,
    seed: int,
    max_prompt_tokens: int,
    distill_cfg: dict[str, Any],
    device: str,
    dtype: str,
    device_map: str | None,
) -> pd.DataFrame:
    """The ``screen`` rule: score every distinct layer set of ``selections`` with ``k`` layers
    and, with ``random_search``, the random-search sets drawn with ``seed`` (see the module
    docstring); write ``csv`` and ``png``. The teacher is loaded in fp32 on
    ``device`` (students train in fp32 master weights), so ``dtype``/``device_map`` do not
    apply."""
    del dtype, device_map
    sets = layer_sets(selections, k)
    # an init-only screen gets only what its score reads (config.screen_distill_settings)
    cfg = {key: v for key, v in (defaults("distill") | distill_cfg).items() if key != "seeds"}
    cfg.update(seed=0, train_embeddings=bool(cfg["train_embeddings"]))  # null: keep students
    params = DistillParams(**cfg)
    items, frame = pd.read_parquet(item_table), pd.read_parquet(samples)
    model, tok, _ = load_recmodel(teacher, load_features(features, items))
    train = load_split(frame, items, tok, "train", max_prompt_tokens, model.items_mode)
    valid = load_split(
        half_rows(frame, "select"), items, tok, "valid", max_prompt_tokens, model.items_mode
    )
    if random_search:
        sets = add_random_search(sets, model.n_layers, k, seed)
    log.info("screen: %d distinct layer sets at k = %d, %d steps each", len(sets), k, steps)
    df = screen_scores(
        model, sets, TeacherCache(cache), train, valid, params, steps, device_of(device)
    )
    log.info("screen: %.1f s in all", float(df["seconds"].sum()))
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    screen_plot(df, png, k)
    return df
