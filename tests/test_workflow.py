"""The whole DAG on the smoke config, as a user runs it (a real Snakemake subprocess)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_smoke_run_reports_teacher_students_and_references(smoke_run):
    res = smoke_run / "results" / "smoke"
    summary = pd.read_csv(res / "report" / "summary.csv")
    models = set(summary["model"])
    assert {"teacher", "random", "popular"} <= models
    students = sorted(m for m in models if m.startswith("student/"))
    layersets = sorted(p.stem for p in (res / "layersets").glob("*.json"))
    # one keep student per distinct layer set, however many selections chose it; its seeds
    # (distill.seeds: [0, 1]) are pooled into one row
    keep = sorted(m for m in students if m.endswith("__keep"))
    assert keep == [f"student/{n}__keep" for n in layersets]
    assert set(summary[summary["model"].isin(keep)]["seeds"]) == {"0,1"}
    assert summary[summary["model"].isin(keep)]["ndcg@5_seed_sd"].notna().all()
    assert "sasrec" in models
    selections = sorted(p.stem for p in (res / "selections").glob("*.json"))
    assert [s for s in selections if "__block__" in s] == ["none__block__k2"]  # counted once
    assert len(selections) > len(layersets)  # the dedupe had something to do
    assert len(list((res / "students").glob("*/final/config.json"))) == 2 * len(students)
    for col in ("ndcg@5", "ndcg@10", "mrr", "hr@1", "hr@5", "hr@10"):
        assert summary[col].between(0, 1).all()
        assert (summary[f"{col}_lo"] <= summary[col]).all()
        assert (summary[col] <= summary[f"{col}_hi"]).all()
    evals = [json.loads(p.read_text()) for p in res.glob("eval/**/*.json")]
    assert len({e["candidates_sha256"] for e in evals}) == 1  # same candidates for every model


def test_smoke_run_scores_are_real_measurements(smoke_run):
    res = smoke_run / "results" / "smoke"
    fisher = json.loads((res / "scores" / "fisher.json").read_text())
    assert fisher["n_layers"] == 4 and fisher["n_samples"] == 16
    assert sum(fisher["normalised"]) == pytest.approx(1.0)
    assert len(set(fisher["raw"])) == 4  # a measurement, not a constant or a formula of depth
    log = pd.read_parquet(next(res.glob("students/*/train_log.parquet")))
    assert log["total"].notna().any() and log["valid_ndcg@5"].notna().any()


def test_smoke_run_ranks_every_model_on_both_protocols(smoke_run):
    """Full ranking ranks the target among a superset of its sampled candidates (every item
    the user never touched), so per user a (deterministic) scorer can never do better there."""
    res = smoke_run / "results" / "smoke"
    n_items = len(pd.read_parquet(smoke_run / "data/processed/smoke/items.parquet"))
    evals = [json.loads(p.read_text()) for p in res.glob("eval/**/*.json")]
    assert {e["model"] for e in evals} >= {"teacher", "random", "popular"}
    for e in evals:
        full = e["full"]
        assert full["n_items"] == n_items, e["model"]
        if e["model"] == "random":  # two independent draws: no per-user order between them
            continue
        for m in ("ndcg@5", "mrr", "hr@10"):
            pairs = zip(full["per_user"][m], e["per_user"][m], strict=True)
            worse = [f <= s + 1e-12 for f, s in pairs]
            assert all(worse), (e["model"], m)
    summary = pd.read_csv(res / "report" / "summary.csv")
    assert set(summary["protocol"]) == {"full"}  # eval.primary, the default
    assert set(summary["other_protocol"]) == {"sampled"}
    md = (res / "report" / "summary.md").read_text()
    assert "full ranking" in md and "Synthetic data" in md
    tex = (res / "report" / "summary.tex").read_text()
    assert tex.count("\\toprule") == 2 and "\nsasrec & " in tex and "\nteacher & " in tex


def test_smoke_run_screens_every_layer_set_and_distils_its_best_and_the_baseline(smoke_run):
    res = smoke_run / "results" / "smoke"
    sels = [json.loads(p.read_text()) for p in (res / "selections").glob("*.json")]
    screen = pd.read_csv(res / "screen" / "k2.csv")
    searched_only = screen["selections"] == "none/random_search"
    assert sorted(screen.loc[~searched_only, "layerset"]) == sorted({s["layerset"] for s in sels})
    # the random search: as many sets as the methods proposed distinct ones
    proposed = {s["layerset"] for s in sels if s["method"] != "none"}
    assert screen["random_search"].sum() == min(len(proposed), 6)  # C(4, 2) = 6 sets exist
    assert list(screen["rank"]) == list(range(1, len(screen) + 1))
    assert {"score_step0", "score_step2", "seconds"} <= set(screen.columns)
    assert (screen["score_step2"] != screen["score_step0"]).any()  # two steps moved the scores
    first_k = next(s["layerset"] for s in sels if s["strategy"] == "first_k")
    searched = screen[screen["random_search"]]["layerset"].iloc[0]  # best first
    distilled = sorted(p.stem for p in (res / "layersets").glob("*.json"))
    top3 = set(screen.loc[~searched_only, "layerset"][:3])
    assert distilled == sorted(top3 | {first_k, searched})  # smoke: top 3
    chosen = json.loads((res / "layersets" / f"{searched}.json").read_text())["selections"]
    assert {"method": "none", "strategy": "random_search", "repeat": 0} in chosen
    validity = pd.read_csv(res / "report" / "screen_validity.csv")
    assert set(validity["screen"]) == {"score_step0", "score_step2"}
    assert validity["n_sets"].eq(len(distilled)).all() and validity["spearman"].notna().all()
    hyps = {h["key"]: h for h in json.loads((res / "report" / "hypotheses.json").read_text())}
    assert [k for k in hyps] == ["T", "R", "H1", "H2", "H3", "S"]
    h3 = {r["baseline"]: r for r in hyps["H3"]["table"]}
    assert {"first_k", "random_search"} <= set(h3)
    assert h3["random_search"]["p_holm"] >= h3["random_search"]["p_bootstrap"]
    assert hyps["S"]["verdict"] in {"holds", "partly", "does not hold"}
    assert hyps["T"]["verdict"] in {"holds", "does not hold"}  # every eval has validation metrics
    # validation numbers are judged on the judge half of the evaluated users (the select half
    # stopped the training runs and ranked the screen)
    samples = pd.read_parquet(smoke_run / "data/processed/smoke/samples.parquet")
    judge = set(samples.loc[samples["valid_half"] == "judge", "user_id"])
    assert 0 < len(judge) < samples["user_id"].nunique()
    for p in res.glob("eval/**/*.json"):
        rec = json.loads(p.read_text())
        if rec["kind"] != "reference":
            assert set(rec["valid"]["user_ids"]) == judge & set(rec["user_ids"]), p
            assert rec["valid"]["half"] == "judge" and "full" in rec["valid"], p


def test_smoke_students_keep_only_the_tokens_their_prompts_use(smoke_run):
    res = smoke_run / "results" / "smoke"
    inits = sorted((res / "students" / "inits").glob("*__keep"))
    assert inits  # one keep init per layer set, whatever the seeds
    assert not list((res / "students" / "inits").glob("*__keep__s*"))
    meta = json.loads((inits[0] / "layerkd.json").read_text())
    assert meta["vocab"]["student"] < meta["vocab"]["teacher"]
    summary = pd.read_csv(res / "report" / "summary.csv").drop_duplicates("model")
    students = summary[summary["kind"] == "student"]
    assert (students["params_no_embedding"] < students["params"]).all()
    teacher = summary[summary["kind"] == "teacher"].iloc[0]
    assert (
        teacher["params"] - teacher["params_no_embedding"]
        > (students["params"] - students["params_no_embedding"]).max()
    )  # the students' embeddings are trimmed, the teacher's are not


def test_smoke_trimmed_student_scores_as_untrimmed_on_every_smoke_sample(smoke_run, tmp_path):
    """The pipeline's trimmed keep init against an untrimmed build of the same layers from the
    same teacher: equal scores on every sample of every split of the smoke data."""
    import numpy as np
    import torch

    from layerkd.models.recmodel import load_recmodel
    from layerkd.models.samples import load_split
    from layerkd.models.train import score_split
    from layerkd.student.build import build_student

    res, proc = smoke_run / "results" / "smoke", smoke_run / "data" / "processed" / "smoke"
    init = sorted((res / "students" / "inits").glob("*__keep"))[0]
    layerset = res / "layersets" / f"{init.name.split('__')[0]}.json"
    inputs = {
        "teacher": res / "teacher" / "final",
        "features": res / "teacher" / "item_features.pt",
        "item_table": proc / "items.parquet",
        "samples": proc / "samples.parquet",
    }
    build_student(**inputs, layerset=layerset, cache=res / "teacher" / "cache.json",
                  init=tmp_path / "full", mode="keep", seed=0, compact={},
                  trim_vocab=False)  # fmt: skip
    items, samples = pd.read_parquet(inputs["item_table"]), pd.read_parquet(inputs["samples"])
    feats = torch.load(inputs["features"], weights_only=False)["features"]
    models = [load_recmodel(d, feats)[:2] for d in (init, tmp_path / "full")]
    assert models[0][0].lm.config.vocab_size < models[1][0].lm.config.vocab_size
    for split in ("train", "valid", "test", "calibration"):
        a, b = (
            score_split(m, load_split(samples, items, tok, split, 64, m.items_mode), 16)
            for m, tok in models
        )
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
