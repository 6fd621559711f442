"""The layer-set screen: its step-0 scores against separately built, saved and reloaded keep
students; the teacher is left untouched; the screen's choice of students."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from layerkd.config import defaults, screen_distill_settings
from layerkd.io import write_json
from layerkd.models.recmodel import load_recmodel
from layerkd.models.train import score_split, valid_ndcg5
from layerkd.selection.names import layerset_id
from layerkd.selection.stages import layersets_stage
from layerkd.student.build import build_student
from layerkd.student.screen import screen_stage
from tests.student.test_build import _valid, distil, make_workspace

#: (method, strategy, layers) of the selection files: two selections share L01-03
CHOSEN = [
    ("fisher", "top_k", [1, 3]),
    ("gradient", "top_k", [1, 3]),
    ("none", "first_k", [0, 1]),
    ("none", "uniform", [0, 2]),
    ("attention", "top_k", [2, 3]),
]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("screen")
    paths = make_workspace(root)
    sels = []
    for method, strategy, layers in CHOSEN:
        p = root / "selections" / f"{method}__{strategy}__k2.json"
        rec = {"method": method, "strategy": strategy, "repeat": 0, "k": 2, "n_layers": 4}
        write_json(p, {**rec, "layers": layers, "layerset": layerset_id(layers, 4)})
        sels.append(p)
    # a selection at another k is not screened here
    other = root / "selections" / "fisher__top_k__k3.json"
    rec = {"method": "fisher", "strategy": "top_k", "repeat": 0, "k": 3, "n_layers": 4}
    write_json(other, {**rec, "layers": [1, 2, 3], "layerset": "L01-02-03"})
    return {**paths, "selections": sels + [other]}


def _screen(
    ws, out: Path, steps: int, given: dict | None = None, search: bool = False, **distill
) -> pd.DataFrame:
    """The screen stage with ``given`` as its distill settings (default: the schema's with
    batch size 8 and ``distill``); ``search``: with the random search."""
    return screen_stage(
        teacher=ws["teacher"],
        features=ws["features"],
        item_table=ws["items"],
        samples=ws["samples"],
        cache=ws["cache"],
        selections=ws["selections"],
        csv=out / "k2.csv",
        png=out / "k2.png",
        k=2,
        steps=steps,
        random_search=search,
        seed=0,
        max_prompt_tokens=64,
        distill_cfg=given if given is not None else defaults("distill", batch_size=8, **distill),
        device="cpu",
        dtype="fp32",
        device_map=None,
    )


def _built(ws, tmp_path: Path, layers: list[int]) -> Path:
    spec = tmp_path / f"{layerset_id(layers, 4)}.json"
    write_json(spec, {"layerset": layerset_id(layers, 4), "layers": layers, "selections": []})
    out = tmp_path / f"init_{layerset_id(layers, 4)}"
    build_student(
        teacher=ws["teacher"],
        features=ws["features"],
        item_table=ws["items"],
        samples=ws["samples"],
        layerset=spec,
        cache=ws["cache"],
        init=out,
        mode="keep",
        seed=0,
        compact=defaults("student.compact"),
    )
    return out


def test_step0_scores_equal_saved_and_reloaded_keep_students(ws, tmp_path):
    df = _screen(ws, tmp_path / "screen", 0, valid_samples=None)
    assert sorted(df["layerset"]) == ["L00-01", "L00-02", "L01-03", "L02-03"]
    assert list(df["rank"]) == [1, 2, 3, 4]
    assert df["screen_score"].is_monotonic_decreasing
    row = df.set_index("layerset").loc["L01-03"]
    assert row["selections"] == "fisher/top_k; gradient/top_k"
    for name, layers in [("L01-03", [1, 3]), ("L00-01", [0, 1]), ("L02-03", [2, 3])]:
        model, valid, _ = _valid(ws, _built(ws, tmp_path, layers))
        expected = valid_ndcg5(score_split(model, valid, 8)[0])
        got = df.set_index("layerset").at[name, "score_step0"]
        assert got == pytest.approx(expected, abs=1e-12), name
    on_disk = pd.read_csv(tmp_path / "screen" / "k2.csv")
    assert list(on_disk["layerset"]) == list(df["layerset"])
    assert (tmp_path / "screen" / "k2.png").stat().st_size > 0


def test_the_screen_validates_on_the_users_distillation_validates_on(ws, tmp_path):
    """With a validation subset, the step-0 score is the first validation score of a real
    distillation run of the same student (the same users)."""
    df = _screen(ws, tmp_path / "screen", 0, valid_samples=10)
    init = _built(ws, tmp_path, [1, 3])
    log = distil(ws, init, tmp_path, 0, valid_samples=10)
    first = float(log["valid_ndcg@5"].dropna().iloc[0])
    assert df.set_index("layerset").at["L01-03", "score_step0"] == pytest.approx(first, abs=1e-12)


def test_an_init_only_screen_reads_only_the_settings_it_is_given(ws, tmp_path):
    """What the screen rule passes at steps 0 (config.screen_distill_settings: no training
    settings) scores exactly as the full distill settings with other training values."""
    full = _screen(ws, tmp_path / "full", 0, valid_samples=10, lr=0.05, epochs=7, w_kd=0.0)
    config = {"distill": defaults("distill", batch_size=8, valid_samples=10, lr=0.05)}
    config["selection"] = {"screen": {"steps": 0}}
    given = screen_distill_settings(config)
    assert set(given) == {"valid_samples", "batch_size", "autocast"}
    part = _screen(ws, tmp_path / "part", 0, given)
    pd.testing.assert_frame_equal(full.drop(columns="seconds"), part.drop(columns="seconds"))


def test_training_steps_move_the_score_leave_the_teacher_and_repeat_exactly(ws, tmp_path):
    feats = torch.load(ws["features"])["features"]
    before = {k: v.clone() for k, v in load_recmodel(ws["teacher"], feats)[0].state_dict().items()}
    a = _screen(ws, tmp_path / "a", 3, valid_samples=None, lr=0.01)
    b = _screen(ws, tmp_path / "b", 3, valid_samples=None, lr=0.01)
    head = ["layerset", "layers", "selections", "random_search", "score_step0", "score_step3"]
    assert list(a.columns[:6]) == head
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert (a["score_step3"] != a["score_step0"]).any()
    np.testing.assert_array_equal(a["screen_score"], a["score_step3"])
    after = load_recmodel(ws["teacher"], feats)[0].state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v, rtol=0, atol=0)


def test_screen_choice_distils_the_top_sets_plus_the_baselines(ws, tmp_path):
    screen = tmp_path / "k2.csv"
    pd.DataFrame(
        {"layerset": ["L02-03", "L01-03", "L00-02", "L00-01"], "rank": [1, 2, 3, 4]}
    ).to_csv(screen, index=False)
    by_stem = {p.stem: p for p in ws["selections"]}
    baselines = [by_stem["none__first_k__k2"]]
    groups = layersets_stage(
        selections=baselines,
        every_selection=ws["selections"][:-1],
        layersets=tmp_path / "layersets",
        distilled=["none__first_k__k2"],
        screens=[screen],
        top=2,
    )
    assert sorted(groups) == ["L00-01", "L01-03", "L02-03"]
    # a screened set is credited to every selection that chose it
    rec = json.loads((tmp_path / "layersets" / "L01-03.json").read_text())
    assert [s["method"] for s in rec["selections"]] == ["fisher", "gradient"]
    pd.DataFrame({"layerset": ["L09-10"], "rank": [1]}).to_csv(screen, index=False)
    with pytest.raises(ValueError, match="L09-10"):
        layersets_stage(
            selections=baselines,
            every_selection=ws["selections"][:-1],
            layersets=tmp_path / "l2",
            distilled=["none__first_k__k2"],
            screens=[screen],
            top=1,
        )


def test_random_search_draws_as_many_sets_as_the_methods_proposed(ws, tmp_path):
    from layerkd.selection.strategies import random_search_sets

    df = _screen(ws, tmp_path / "screen", 0, search=True, valid_samples=None)
    # the methods proposed 2 distinct sets (L01-03 by fisher and gradient, L02-03): R = 2
    drawn = df[df["random_search"]]
    assert len(drawn) == 2 and drawn["layerset"].is_unique
    want = {layerset_id(x, 4) for x in random_search_sets(4, 2, 2, seed=0)}
    assert set(drawn["layerset"]) == want
    plain = _screen(ws, tmp_path / "plain", 0, valid_samples=None)
    only = df[df["selections"] == "none/random_search"]
    assert set(only["layerset"]) == want - set(plain["layerset"])
    assert len(df) == len(plain) + len(only)
    # every set scores the same with or without the search beside it
    both = df.set_index("layerset").loc[plain["layerset"], "score_step0"]
    np.testing.assert_array_equal(both.to_numpy(), plain["score_step0"].to_numpy())
    # the best random-search set is distilled as none/random_search; the top choice ignores
    # sets only the search drew
    df.to_csv(tmp_path / "k2.csv", index=False)
    by_stem = {p.stem: p for p in ws["selections"]}
    groups = layersets_stage(
        selections=[by_stem["none__first_k__k2"]],
        every_selection=ws["selections"][:-1],
        layersets=tmp_path / "layersets",
        distilled=["none__first_k__k2"],
        screens=[tmp_path / "k2.csv"],
        top=1,
        random_search=True,
    )
    best_drawn = drawn.sort_values("rank")["layerset"].iloc[0]
    assert {"method": "none", "strategy": "random_search", "repeat": 0} in groups[best_drawn]
    top = df[df["selections"] != "none/random_search"].sort_values("rank")["layerset"].iloc[0]
    assert top in groups
