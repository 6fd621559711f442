"""layerkd.plan: FLOPs and memory of a tiny known shape by hand, sample counts from stats.json,
the cluster config's plan (every torch rule), and clear errors when a count or shape is missing."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from layerkd.config import ConfigError, distilled_names, load_config
from layerkd.plan import (
    GPUS,
    KNOWN_SHAPES,
    STARTUP_S,
    Job,
    Shape,
    main,
    model_shape,
    plan_jobs,
    sample_counts,
    table,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TORCH_RULES = (
    "prepare_teacher",
    "finetune_teacher",
    "teacher_cache",
    "ablation",
    "build_student",
    "distill",
    "evaluate_teacher",
    "evaluate_student",
)
# 2 layers, hidden 8, MLP 16, 2 heads of 4, 1 kv head (k, v: 8 -> 4), vocab 10, untied head
TINY = Shape(layers=2, hidden=8, intermediate=16, heads=2, kv_heads=1, vocab=10, tied=False)


def cluster_root(tmp_path: Path) -> Path:
    """A project directory with the two configs the cluster plan reads and no processed data."""
    (tmp_path / "config").mkdir()
    for name in ("config.yaml", "llama3_8b.yaml"):
        shutil.copy(REPO_ROOT / "config" / name, tmp_path / "config" / name)
    return tmp_path


def test_parameters_and_flops_of_a_tiny_shape_by_hand():
    # q 8x8 + k 8x4 + v 8x4 + o 8x8 + gate 8x16 + up 8x16 + down 16x8
    assert TINY.matmul == 64 + 32 + 32 + 64 + 128 + 128 + 128 == 576
    # 2 x (576 + two norms of 8) + final norm 8 + embeddings 80 + LM head 80
    assert TINY.params == 2 * 592 + 8 + 160 == 1352
    assert Shape(2, 8, 16, 2, 1, 10, True).params == 1352 - 80
    # per token at T = 4: 2 layers x (w x 576 + a x 4*T*h), 4*T*h = 128 (QK^T and AV)
    assert TINY.flops(4) == 2 * (2 * 576 + 128) == 2560
    assert TINY.flops(4, "train") == 2 * (6 * 576 + 3 * 128) == 7680
    assert TINY.flops(4, "lora") == 2 * (4 * 576 + 3 * 128) == 5376


def test_activation_bytes_of_a_tiny_shape_by_hand():
    # bf16: norms 2 x (fp32 copy 4h + bf16 output 2h) = 96, q/k/v/o inputs 4 x 2h = 64,
    # MLP 4 x 2i = 128; eager attention: fp32 softmax + bf16 probs, a*T*(4+2) = 48
    assert TINY.saved(2, 4, eager=True) == 96 + 64 + 128 + 48 == 336
    assert TINY.saved(2, 4) == 96 + 64 + 128 + 4 * 2 == 296  # sdpa: a log-sum-exp per head
    assert TINY.saved(4, 4) == 2 * (32 + 32) + 128 + 256 + 8 == 520  # fp32
    assert TINY.transient(2) == 2 * (3 * 16 + 4 * 8) == 160


def test_plan_of_a_tiny_shape_by_hand():
    config = load_config(REPO_ROOT / "config" / "config.yaml", REPO_ROOT / "config" / "smoke.yaml")
    counts = {"users": 10, "items": 5, "train": 10, "valid": 10, "test": 10, "calibration": 4}
    jobs = {j.rule: j for j in plan_jobs(config, counts, TINY)}
    seq = config["teacher"]["max_prompt_tokens"]  # 64, fp32 in the smoke config
    ev = jobs["evaluate_teacher"]
    assert ev.tokens == 10 * seq and ev.flops == 10 * seq * TINY.flops(seq)
    # fp32 weights + item features and item vectors (5 x (8 + head_dim 32) x 4 B)
    assert ev.gpu_fixed == 1352 * 4 + 5 * 40 * 4
    assert ev.gpu_per_sample == seq * TINY.transient(4) + 5 * 4
    ab = jobs["ablation"]  # the full stack once + layer 1 again when layer 0 is skipped: 3 layers
    assert ab.samples == 4 and ab.flops == 4 * seq * 3 * (2 * 576 + 4 * seq * 8)
    shard = jobs["teacher_cache"]  # one shard: 4 calibration samples (6N + Grams), 10 forwards
    gram = 2 * sum(2 * min(seq * (a + b), a * b) for a, b in TINY.linears())
    assert shard.jobs == 1 and shard.samples == 14
    assert shard.flops == 4 * seq * (TINY.flops(seq, "train") + gram) + 10 * seq * TINY.flops(seq)
    # smoke: the screen's top 3 layer sets, none__first_k and the random search's best, two
    # seeds; compact for fisher only, so at most the screen's 3 (an upper bound: the screen
    # may not choose fisher's set)
    assert config["distill"]["seeds"] == [0, 1] and config["selection"]["random_search"]
    assert config["selection"]["screen"] == {"steps": 2, "top": 3, "baselines": ["first_k"]}
    assert jobs["distill k=2 keep"].jobs == 5 * 2 and jobs["distill k=2 compact"].jobs == 3 * 2
    assert jobs["build_student k=2 keep"].jobs == 5  # one keep init serves both seeds
    # the screen: 8 selections at k=2 (5 methods x top_k + first_k, uniform, block), each
    # scored twice on the 10 validation samples (2N) and trained 2 steps of 16 samples (6N)
    # and as many random-search sets as the methods proposed (5): an upper bound of 13 sets
    screen = jobs["screen k=2 keep"]
    two = replace(TINY, layers=2)
    assert screen.jobs == 1 and screen.samples == 13 * 10
    per_set = 2 * 10 * seq * two.flops(seq) + 2 * 16 * seq * two.flops(seq, "train")
    assert screen.flops == 13 * per_set
    keep = jobs["distill k=2 keep"]  # epochs x 6N + (epochs + 1) validations of every sample
    assert keep.flops == 1 * 10 * seq * TINY.flops(seq, "train") + 2 * 10 * seq * TINY.flops(seq)


def test_hours_memory_and_fit_of_a_job():
    peak = 0.4 * GPUS["h200"]["bf16"]
    job = Job("x", 2, 1, 1, peak * 3600, "6N", "bf16", 100e9, 10e9, 8, 5e9, 3600e9)
    (row,) = table([job], "h200", 0.4, 1.0)
    assert row["compute_h"] == pytest.approx(1.0) and row["io_h"] == pytest.approx(1.0)
    assert row["h/job"] == pytest.approx(2 + STARTUP_S / 3600)
    assert row["GPU_h"] == pytest.approx(2 * row["h/job"])
    assert row["GPU_GB"] == pytest.approx(180) and row["host_GB"] == pytest.approx(5)
    # 95% of 141 GB = 133.95 GB: (133.95 - 100) / 10 -> at most batch 3
    assert row["fits"] == "NO: batch <= 3"
    cpu = Job("y", 1, 0, 0, 0.0, "-", "cpu", 0.0, 0.0, 0, 1e9, 3600e9)
    assert table([cpu], "h200", 0.4, 1.0)[0]["GPU_h"] == 0


def test_sample_counts_come_from_stats_json(tmp_path):
    config = load_config(REPO_ROOT / "config" / "config.yaml")
    stats = tmp_path / "data" / "processed" / "synthetic" / "stats.json"
    stats.parent.mkdir(parents=True)
    split = {"train": 600, "valid": 300, "test": 300, "calibration": 32}
    stats.write_text(json.dumps({"users": 300, "items": 240, "samples": split, "raw_rows": 9}))
    counts = sample_counts(config, "synthetic", users=5, items=None, root=tmp_path)
    assert counts == {"users": 300, "items": 240, **split, "source": str(stats)}
    config["eval"]["max_users"] = 100  # eval.max_users caps the test users
    assert sample_counts(config, "synthetic", None, None, tmp_path)["test"] == 100


def test_sample_counts_without_stats_json(tmp_path):
    config = load_config(REPO_ROOT / "config" / "config.yaml", REPO_ROOT / "config/llama3_8b.yaml")
    counts = sample_counts(config, "video_games", users=1000, items=300, root=tmp_path)
    assert counts["train"] == 2000 and counts["valid"] == counts["test"] == 1000
    assert counts["calibration"] == 512 and counts["items"] == 300
    config["data"]["max_users"] = 400  # a seeded sample of users caps --users
    counts = sample_counts(config, "video_games", users=1000, items=None, root=tmp_path)
    assert counts["users"] == 400 and counts["source"].startswith("data.max_users")
    assert sample_counts(config, "video_games", None, None, tmp_path)["users"] == 400


def test_no_sample_count_is_a_clear_error(tmp_path):
    root = cluster_root(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.max_users is null and --users was not given"):
        main(["--root", str(root), "--configfile", str(root / "config" / "llama3_8b.yaml")])


def test_the_cluster_plan_lists_every_torch_rule(tmp_path, capsys):
    root = cluster_root(tmp_path)
    out_json = tmp_path / "plan.json"
    args = ["--root", str(root), "--configfile", str(root / "config" / "llama3_8b.yaml")]
    plan = main([*args, "--users", "20000", "--items", "5000", "--json", str(out_json)])
    printed = capsys.readouterr().out
    for rule in TORCH_RULES:
        assert rule in printed, rule
    assert "40% of the dense peak (bf16 989" in printed  # the stated utilisation and peak
    rows = {r["rule"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert set(rows) == {r["rule"] for r in plan["rows"]}
    assert rows["teacher_cache"]["jobs"] == 8  # teacher.shards
    # one student per distilled selection (selection.distill: all) and the random search's
    # best set x 3 seeds x the keep mode: methods x strategies + the baselines, random once
    # per repeat (3 repeats: 2 more), + 1
    config = load_config(root / "config" / "config.yaml", root / "config" / "llama3_8b.yaml")
    assert config["selection"]["random_repeats"] == 3 and "random" in config["baselines"]
    n_sel = len(config["methods"]) * len(config["strategies"]) + len(config["baselines"]) + 2
    assert len(distilled_names(config)) == n_sel and len(config["distill"]["seeds"]) == 3
    assert (
        rows["distill k=8 keep"]["jobs"]
        == (n_sel + 1) * 3
        == rows["evaluate_student k=8 keep"]["jobs"]
    )
    finetune = rows["finetune_teacher"]
    # LoRA on CUDA: bf16 autocast over fp32 master weights (teacher.finetune.autocast: auto)
    assert finetune["FLOPs"] == "4N LoRA" and finetune["peak"] == "bf16"
    for r in plan["rows"]:
        assert r["h/job"] > 0 and r["host_GB"] > 0, r
        if r["rule"] != "build_student k=8 keep":  # weights: 16 GB (teacher), 5.6 GB (student)
            assert r["PFLOP/job"] > 0 and r["GPU_GB"] > (5.6 if "student" in r["rule"] else 16), r
    assert plan["shape"] == KNOWN_SHAPES["meta-llama/Meta-Llama-3-8B"].__dict__
    assert plan["header"][2].startswith("samples (--users)")


def test_shapes_from_a_local_config_json_and_unknown_models(tmp_path):
    cfg = {"num_hidden_layers": 2, "hidden_size": 8, "intermediate_size": 16, "vocab_size": 10,
           "num_attention_heads": 2, "num_key_value_heads": 1}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert model_shape({"model": str(tmp_path)}) == TINY
    assert model_shape({"model": "packaged:smollm2"}).params == pytest.approx(134.5e6, rel=0.01)
    assert KNOWN_SHAPES["meta-llama/Meta-Llama-3-8B"].params == pytest.approx(8.03e9, rel=0.001)
    with pytest.raises(ConfigError, match=r"teacher\.model='org/unknown'"):
        model_shape({"model": "org/unknown"})


def test_the_slurm_profile_covers_the_cluster_plan(tmp_path, capsys):
    """profiles/slurm/config.yaml is sized from this plan (Video_Games: ~94.8k users, ~25.6k
    items): no GPU rule may ask for less wall time or host memory than the plan estimates."""
    import yaml

    root = cluster_root(tmp_path)
    args = ["--root", str(root), "--configfile", str(root / "config" / "llama3_8b.yaml")]
    rows = main([*args, "--users", "94800", "--items", "25600"])["rows"]
    capsys.readouterr()
    sized = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    for row in rows:
        rule = row["rule"].split()[0]
        res = sized["set-resources"][rule]
        assert res["runtime"] >= 60 * row["h/job"] and res["mem_mb"] >= 1000 * row["host_GB"], (
            rule, res, row["h/job"], row["host_GB"])  # fmt: skip


def test_the_slmrec_plan_costs_id_prompts_and_mlp_adapters(tmp_path, capsys):
    """config/slmrec.yaml (an overlay of the cluster config): one token an item, so a prompt is
    the instruction plus data.history_len slots; LoRA on the three MLP projections; no item
    text encoded; students at k = 8 and 4; the SLURM profile covers every rule."""
    import yaml

    root = cluster_root(tmp_path)
    shutil.copy(REPO_ROOT / "config" / "slmrec.yaml", root / "config" / "slmrec.yaml")
    files = [str(root / "config" / n) for n in ("llama3_8b.yaml", "slmrec.yaml")]
    plan = main(
        ["--root", str(root), "--configfile", *files, "--users", "50000", "--items", "60000"]
    )
    capsys.readouterr()
    rows = {r["rule"]: r for r in plan["rows"]}
    config = load_config(root / "config" / "config.yaml", *files)
    seq = 16 + config["data"]["history_len"]
    assert config["teacher"]["items"] == "ids" and seq < config["teacher"]["max_prompt_tokens"]
    assert rows["finetune_teacher"]["tokens/job"] == rows["finetune_teacher"]["samples/job"] * seq
    assert rows["prepare_teacher"]["PFLOP/job"] == 0  # ids: no item text to encode
    assert {"distill k=8 keep", "distill k=4 keep"} <= set(rows)
    # adapters on gate, up, down: r x (in + out) each, per layer
    h, i, L, r = 4096, 14336, 32, 16
    shape = model_shape(config["teacher"])
    mlp = [(h, i), (h, i), (i, h)]
    assert shape.linears()[4:] == mlp
    jobs = {j.rule: j for j in plan_jobs(config, plan["counts"], shape)}
    kv = 8 * 128  # 8 key/value heads of 128
    attention = [(h, h), (h, kv), (h, kv), (h, h)]
    more = L * r * (sum(a + b for a, b in mlp) - sum(a + b for a, b in attention))
    config["teacher"]["finetune"]["lora_targets"] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    attn_jobs = {j.rule: j for j in plan_jobs(config, plan["counts"], shape)}
    # GPU memory holds 12 B (weights fp32 + AdamW) a trainable parameter
    diff = jobs["finetune_teacher"].gpu_fixed - attn_jobs["finetune_teacher"].gpu_fixed
    assert diff == 12 * more > 0
    sized = yaml.safe_load((REPO_ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    for row in plan["rows"]:
        res = sized["set-resources"][row["rule"].split()[0]]
        assert res["runtime"] >= 60 * row["h/job"] and res["mem_mb"] >= 1000 * row["host_GB"], row
