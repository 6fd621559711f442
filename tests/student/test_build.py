"""Students: keep and compact builds, reload equality, the teacher projection, dedupe count."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from layerkd.config import defaults, settings
from layerkd.data.samples import valid_halves
from layerkd.io import save_torch, write_json
from layerkd.models.backbone import LayerOutputs, build_tiny, keep_layers
from layerkd.models.recmodel import RecHeads, RecModel, load_recmodel, save_recmodel
from layerkd.models.samples import half_rows, load_split
from layerkd.models.train import score_split
from layerkd.selection.names import layerset_id
from layerkd.selection.stages import layersets_stage
from layerkd.selection.strategies import STRATEGIES, select_layers
from layerkd.student.build import build_student, student_ids
from layerkd.student.compact import CompactSpec, build_compact, load_alignment
from layerkd.student.distill import distill_student
from layerkd.teacher.cache import train_pass
from layerkd.teacher.store import ChunkWriter, TeacherCache, write_index
from tests.tiny import TINY

WORDS = "red blue green shoe cup lamp book pen coffee yoga tent stove mug sock hat bag".split()
N_ITEMS = 16
NARROW = {"hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "init": "teacher"}


def _spec(**kw) -> CompactSpec:
    """A compact-student spec: the schema defaults of ``student.compact`` updated with ``kw``."""
    return settings(CompactSpec, "student.compact", **kw)


def make_workspace(root: Path, *, n_users: int = 24, seed: int = 0) -> dict[str, Path]:
    """Every input of the student stages on disk, for a tiny random teacher: items, samples,
    item features, a saved teacher, its cache on the training samples and a layer set."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"i{n}" for n in range(N_ITEMS)]
    texts = [f"{WORDS[n]} {WORDS[(3 * n + 1) % N_ITEMS]}" for n in range(N_ITEMS)]
    items = pd.DataFrame({"item_id": ids, "title": texts, "text": texts})
    rows = []
    for u in range(n_users):
        for split in ("train", "valid"):
            seq = rng.choice(N_ITEMS, size=6, replace=False)
            negs = [ids[i] for i in seq[4:]] + [ids[i] for i in rng.choice(N_ITEMS, 3)]
            rows.append(
                {
                    "split": split,
                    "user_id": f"u{u}",
                    "history": [ids[i] for i in seq[: 2 + u % 3]],
                    "target": ids[seq[3]],
                    "target_rating": float(1 + u % 5) if u % 4 else float("nan"),
                    "candidates": [ids[seq[3]], *negs[:4]],
                }
            )
    samples = pd.DataFrame(rows)
    samples["valid_half"] = valid_halves(samples, seed)  # as prepare_data writes them
    paths = {k: root / v for k, v in _NAMES.items()}
    items.to_parquet(paths["items"], index=False)
    samples.to_parquet(paths["samples"], index=False)
    # each user's items in sample order (train history, target, valid history, target)
    seen = [(u, i) for u, h, t in zip(samples["user_id"], samples["history"], samples["target"],
                                      strict=True) for i in [*h, t]]  # fmt: skip
    pd.DataFrame(seen, columns=["user_id", "item_id"]).drop_duplicates().to_parquet(
        paths["interactions"], index=False
    )
    lm, tok = build_tiny(TINY, texts, seed)
    torch.manual_seed(seed + 1)
    feats = torch.randn(N_ITEMS, 8)
    save_torch(paths["features"], {"item_ids": ids, "features": feats})
    teacher = RecModel(lm, RecHeads(TINY["hidden_size"], 8, N_ITEMS, 16), feats).eval()
    save_recmodel(teacher, tok, paths["teacher"], {"kind": "teacher", "layers": [0, 1, 2, 3]})
    write_json(paths["teacher"] / "backbone.json", {"source": "tiny-random"})  # a backbone too
    train = load_split(samples, items, tok, "train", 64)
    writer = ChunkWriter(root / "cache" / "shard0", rows=10)  # several chunks: 24 samples
    writer.add(index=torch.arange(len(train)), **train_pass(teacher, train, 8))
    writer.close()
    write_index([root / "cache" / "shard0"], paths["cache"])
    sel = [{"method": "fisher", "strategy": "top_k", "repeat": 0}]
    write_json(paths["layerset"], {"layerset": "L01-03", "layers": [1, 3], "selections": sel})
    return paths


_NAMES = {
    "items": "items.parquet",
    "samples": "samples.parquet",
    "interactions": "interactions.parquet",
    "features": "features.pt",
    "teacher": "teacher",
    "cache": "cache.json",
    "layerset": "L01-03.json",
}


def _build(ws: dict[str, Path], out: Path, mode: str, compact: dict | None = None) -> dict:
    return build_student(
        teacher=ws["teacher"],
        features=ws["features"],
        item_table=ws["items"],
        samples=ws["samples"],
        layerset=ws["layerset"],
        cache=ws["cache"],
        init=out,
        mode=mode,
        seed=0,
        compact=defaults("student.compact", **(compact or {})),
    )


def _valid(ws: dict[str, Path], model_dir: Path):
    """A saved model and the validation split the screen and distillation read (the select
    half of the validation users)."""
    items = pd.read_parquet(ws["items"])
    samples = half_rows(pd.read_parquet(ws["samples"]), "select")
    feats = torch.load(ws["features"])["features"]
    model, tok, meta = load_recmodel(model_dir, feats)
    return model, load_split(samples, items, tok, "valid", 64), meta


def distil(ws: dict[str, Path], init: Path, out: Path, seed: int, **distill) -> pd.DataFrame:
    """Distil the student in ``init`` (1 epoch, batch 8, then ``distill``) into ``out/final``;
    its log goes to ``out/log.parquet`` and is returned."""
    return distill_student(
        init=init,
        features=ws["features"],
        item_table=ws["items"],
        samples=ws["samples"],
        cache=ws["cache"],
        final=out / "final",
        train_log=out / "log.parquet",
        max_prompt_tokens=64,
        distill_cfg=defaults("distill", **{"epochs": 1, "batch_size": 8, **distill}),
        seed=seed,
        checkpoints=None,
        device="cpu",
        dtype="fp32",
        device_map=None,
    )


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    return make_workspace(tmp_path_factory.mktemp("ws"))


def _teacher(ws: dict[str, Path]) -> RecModel:
    return load_recmodel(ws["teacher"], torch.load(ws["features"])["features"])[0]


def _states(ws: dict[str, Path], layers: list[int]) -> torch.Tensor:
    cache = TeacherCache(ws["cache"])
    return cache.rows("hidden", range(len(cache)))[:, layers]


@pytest.mark.parametrize("mode", ["keep", "compact"])
def test_saved_student_reloads_with_the_same_scores(ws, tmp_path, mode):
    from transformers import AutoModelForCausalLM

    teacher, tok, _ = load_recmodel(ws["teacher"], torch.load(ws["features"])["features"])
    if mode == "keep":
        keep_layers(teacher.lm, [1, 3])
        in_memory, align = teacher, None
    else:
        spec = _spec(**NARROW)
        in_memory, align = build_compact(teacher, [1, 3], spec, _states(ws, [1, 3]), seed=0)
    info = _build(ws, tmp_path / "s", mode, NARROW)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "s")
    assert plain.config.num_hidden_layers == 2
    assert plain.config.hidden_size == (16 if mode == "compact" else 32)
    reloaded, data, meta = _valid(ws, tmp_path / "s")
    assert meta["mode"] == mode and meta["layers"] == [1, 3] and meta["seed"] == 0
    items, samples = pd.read_parquet(ws["items"]), pd.read_parquet(ws["samples"])
    own = load_split(
        half_rows(samples, "select"), items, tok, "valid", 64
    )  # the untrimmed tokenizer's ids
    for a, b in zip(score_split(in_memory, own, 8), score_split(reloaded, data, 8), strict=True):
        np.testing.assert_array_equal(a, b)
    assert info["parameters"] == sum(p.numel() for p in reloaded.parameters())
    saved_align = load_alignment(tmp_path / "s", 32)
    if mode == "keep":
        assert saved_align is None and info["init"] == "copy"
    else:
        for x, y in zip(align.parameters(), saved_align.parameters(), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_compact_student_is_smaller_and_random_init_differs(ws, tmp_path):
    keep = _build(ws, tmp_path / "k", "keep")
    narrow = _build(ws, tmp_path / "c", "compact", NARROW)
    assert narrow["parameters"] < keep["parameters"]
    rand = _build(ws, tmp_path / "r", "compact", {**NARROW, "init": "random"})
    assert rand["init"] == "random" and rand["parameters"] == narrow["parameters"]
    m1, data, _ = _valid(ws, tmp_path / "c")
    m2, _, _ = _valid(ws, tmp_path / "r")
    assert not np.allclose(score_split(m1, data, 8)[0], score_split(m2, data, 8)[0])


def test_full_width_teacher_projection_reproduces_the_keep_student(ws):
    """With the teacher's width, all heads and all neurons, ``P`` is a rotation: the compact
    student computes the keep student's scores, and ``Pᵀ`` maps its states onto the teacher's."""
    teacher = _teacher(ws)
    keep = copy.deepcopy(teacher)
    keep_layers(keep.lm, [1, 3])
    full = settings(
        CompactSpec,
        "student.compact",
        hidden_size=32,
        intermediate_size=64,
        num_heads=4,
        init="teacher",
    )
    compact, align = build_compact(teacher, [1, 3], full, _states(ws, [1, 3]), seed=0)
    _, data, _ = _valid(ws, ws["teacher"])
    b, cand, _ = data.batch(range(len(data)))
    with LayerOutputs(keep.lm) as rk, LayerOutputs(compact.lm) as rc:
        out_k, out_c = keep(b, cand), compact(b, cand)
    torch.testing.assert_close(out_c.scores, out_k.scores, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_c.rating, out_k.rating, rtol=1e-4, atol=1e-4)
    for j in range(2):
        mapped = align[j](rc.outputs[j][:, -1])
        torch.testing.assert_close(mapped, rk.outputs[j][:, -1], rtol=1e-3, atol=1e-3)


def test_projection_handles_grouped_query_attention():
    """A GQA teacher (4 query heads, 2 key/value heads) projected to 2 heads sharing 1."""
    tiny = {**TINY, "num_kv_heads": 2}
    lm, _ = build_tiny(tiny, [" ".join(WORDS)], 0)
    teacher = RecModel(lm, RecHeads(32, 8, N_ITEMS, 16), torch.randn(N_ITEMS, 8)).eval()
    spec = settings(
        CompactSpec,
        "student.compact",
        hidden_size=16,
        intermediate_size=32,
        num_heads=2,
        num_kv_heads=1,
    )
    states = torch.randn(10, 2, 32)
    student, align = build_compact(teacher, [0, 2], spec, states, seed=0)
    assert student.lm.config.num_key_value_heads == 1
    k_proj = student.lm.model.layers[0].self_attn.k_proj.weight
    assert k_proj.shape == (8, 16) and len(align) == 2
    full = settings(
        CompactSpec,
        "student.compact",
        hidden_size=32,
        intermediate_size=64,
        num_heads=4,
        num_kv_heads=2,
    )
    same, _ = build_compact(teacher, [0, 2], full, states, seed=0)
    ids = torch.tensor([[3, 4, 5, 6]])
    from layerkd.models.text import pad_left

    b = pad_left(ids.tolist(), 0)
    cand = torch.tensor([[0, 1, 2]])
    ref = copy.deepcopy(teacher)
    keep_layers(ref.lm, [0, 2])
    torch.testing.assert_close(same(b, cand).scores, ref(b, cand).scores, rtol=1e-4, atol=1e-4)


def test_projection_rejects_impossible_shapes(ws):
    teacher = _teacher(ws)
    states = _states(ws, [1, 3])
    for match, hidden, heads in (("head size", 16, 4), ("exceeds", 64, 8), ("multiple", 18, 4)):
        spec = _spec(hidden_size=hidden, intermediate_size=32, num_heads=heads)
        with pytest.raises(ValueError, match=match):
            build_compact(teacher, [1, 3], spec, states, seed=0)


def test_distill_jobs_equal_distinct_layer_sets_for_every_strategy(tmp_path):
    """Selections of every strategy that pick the same layers share one student (per mode
    and seed); the compact filter keeps only layer sets of the listed selections."""
    rng = np.random.default_rng(0)
    n_layers, k, paths = 12, 4, []
    for method in ("fisher", "gradient", "taylor", "none"):
        scores = rng.random(n_layers)
        for strategy in STRATEGIES:
            kept = select_layers(
                strategy,
                k,
                n_layers,
                scores,
                seed=0,
                block_distance=rng.random(k + 1),
            )
            path = tmp_path / "sel" / f"{method}__{strategy}.json"
            sel = {"method": method, "strategy": strategy, "layers": kept}
            write_json(path, {**sel, "layerset": layerset_id(kept, n_layers)})
            paths.append(path)
    groups = layersets_stage(
        selections=paths,
        every_selection=paths,
        layersets=tmp_path / "layersets",
        distilled=[p.stem for p in paths],
    )
    distinct = {json.loads(p.read_text())["layerset"] for p in paths}
    assert len(groups) == len(distinct) < len(paths)
    ids = student_ids(tmp_path / "layersets", ["keep"], [0])
    assert len(ids) == len(set(ids)) == len(distinct)
    ids2 = student_ids(tmp_path / "layersets", ["keep", "compact"], [0, 1])
    assert len(set(ids2)) == 4 * len(distinct)
    only = student_ids(tmp_path / "layersets", ["keep", "compact"], [0], ["fisher__top_k"])
    assert sum(i.endswith("__compact__s0") for i in only) == 1
    assert sum(i.endswith("__keep__s0") for i in only) == len(distinct)


def test_distillation_never_loads_the_teacher(ws, tmp_path, monkeypatch):
    import layerkd.student.distill as student_mod

    _build(ws, tmp_path / "init", "keep")
    loaded = []
    real = student_mod.load_recmodel

    def spy(path, *args, **kwargs):
        loaded.append(Path(path).resolve())
        return real(path, *args, **kwargs)

    monkeypatch.setattr(student_mod, "load_recmodel", spy)
    log = distil(ws, tmp_path / "init", tmp_path, 3, w_hidden=0.5, seeds=[3])
    assert loaded == [(tmp_path / "init").resolve()]
    assert ws["teacher"].resolve() not in loaded
    meta = json.loads((tmp_path / "final" / "layerkd.json").read_text())
    assert meta["seed"] == 3 and meta["distill"]["train_embeddings"] is False
    assert {"task", "kd", "hidden", "rating", "total", "valid_ndcg@5"} <= set(log.columns)


@pytest.mark.slow
def test_smoke_run_distils_each_distinct_layer_set_once_per_mode_and_seed(smoke_run):
    import yaml

    res = smoke_run / "results" / "smoke"
    cfg = yaml.safe_load((smoke_run / "config" / "smoke.yaml").read_text())
    ids = student_ids(
        res / "layersets",
        cfg["student"]["modes"],
        cfg["distill"]["seeds"],
        cfg["student"].get("compact", {}).get("selections"),
    )
    jobs = sorted(p.name[len("distill_") : -4] for p in res.glob("benchmarks/distill_*.tsv"))
    assert jobs == sorted(ids)
    n_sets = len(list((res / "layersets").glob("*.json")))
    assert sum("__keep__" in i for i in ids) == n_sets * len(cfg["distill"]["seeds"])
    evals = sorted(p.stem for p in (res / "eval" / "student").glob("*.json"))
    assert evals == sorted(ids)


@pytest.mark.parametrize("items", ["ids", "hybrid"])
def test_full_width_projection_reproduces_the_keep_student_with_item_slots(items):
    """The slot map of an ID-mode teacher is re-based with the residual stream (``P·W``,
    ``P·b``): at the teacher's width the compact student scores as the keep student does."""
    from layerkd.teacher.cache import train_pass
    from tests.tiny import tiny_model, tiny_split

    teacher, _ = tiny_model(items=items)
    data = tiny_split(n=6, items=items)
    states = train_pass(teacher, data, 3)["hidden"][:, [1, 3]]
    full = _spec(hidden_size=32, intermediate_size=64, num_heads=4, init="teacher")
    compact, _ = build_compact(teacher, [1, 3], full, states, seed=0)
    assert compact.heads.item_in.out_features == 32
    keep = copy.deepcopy(teacher)
    keep_layers(keep.lm, [1, 3])
    b, cand, _ = data.batch(range(6))
    with torch.no_grad():
        torch.testing.assert_close(
            compact(b, cand).scores, keep(b, cand).scores, rtol=1e-4, atol=1e-4
        )
    narrow = _spec(hidden_size=16, intermediate_size=32, num_heads=2, init="teacher")
    small, _ = build_compact(teacher, [1, 3], narrow, states, seed=0)
    assert small.heads.item_in.weight.shape == (16, 16)  # table width 16 -> student hidden 16
    assert small(b, cand).scores.isfinite().all()
    random_spec = _spec(hidden_size=16, intermediate_size=32, num_heads=2, init="random")
    rand, _ = build_compact(teacher, [1, 3], random_spec, None, seed=0)
    assert rand.heads.item_in.out_features == 16 and rand(b, cand).scores.isfinite().all()
