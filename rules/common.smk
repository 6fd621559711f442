# Helpers shared by every rule: config validation, dataset lookup, the selection list and the
# checkpoint-driven list of distinct layer sets.

import os

from snakemake.utils import validate

from layerkd.config import check_config, distilled_names, selection_names

validate(config, schema="../config/schema.yaml")
check_config(config)

DATASETS = [d["name"] for d in config["datasets"]]
SELECTIONS = selection_names(config)
DISTILLED = distilled_names(config)
# method agreement needs at least two methods
VALIDATION = (
    expand("results/{dataset}/validation/correlations.csv", dataset=DATASETS)
    if len(config["methods"]) > 1
    else []
)
HEAVY = config.get("threads") or workflow.cores  # torch steps: all cores by default


wildcard_constraints:
    dataset="|".join(DATASETS),
    method="[a-z_]+",
    strategy="[a-z_]+(-[0-9]+)?",
    layerset="L[0-9-]+",
    shard="[0-9]+",
    k="[0-9]+",


def dataset_cfg(wildcards):
    """The config entry of ``{dataset}``."""
    return next(d for d in config["datasets"] if d["name"] == wildcards.dataset)


def score_input(wildcards):
    """The score file a selection reads (none for the score-free baselines)."""
    if wildcards.method == "none":
        return []
    return f"results/{wildcards.dataset}/scores/{wildcards.method}.json"


def selection_files(wildcards):
    """Every selection of a dataset."""
    return [f"results/{wildcards.dataset}/selections/{s}.json" for s in SELECTIONS]


def distilled_selection_files(wildcards):
    """The selections whose layer sets get a student (``selection.distill``)."""
    return [f"results/{wildcards.dataset}/selections/{s}.json" for s in DISTILLED]


def cache_shards(wildcards):
    """The teacher cache shards of a dataset."""
    n = config["teacher"]["shards"]
    return [f"results/{wildcards.dataset}/teacher/cache/shard{i}.pt" for i in range(n)]


def student_evals(wildcards):
    """Evaluation files of every distinct layer set (known once the checkpoint ran)."""
    out = checkpoints.layersets.get(dataset=wildcards.dataset).output[0]
    names = sorted(f[:-5] for f in os.listdir(out) if f.endswith(".json"))
    return [f"results/{wildcards.dataset}/eval/student/{n}.json" for n in names]


def all_evals(wildcards):
    """Teacher, students and the reference rankers."""
    base = f"results/{wildcards.dataset}/eval"
    return [f"{base}/teacher.json", f"{base}/random.json", f"{base}/popular.json"] + student_evals(
        wildcards
    )


def student_train_logs(wildcards):
    """Distillation logs of every distinct layer set (known once the checkpoint ran)."""
    out = checkpoints.layersets.get(dataset=wildcards.dataset).output[0]
    names = sorted(f[:-5] for f in os.listdir(out) if f.endswith(".json"))
    return [f"results/{wildcards.dataset}/students/{n}/train_log.parquet" for n in names]


def validation_table(wildcards):
    """The method-vs-ablation correlation table when a rule makes it or it exists, else none
    (the report then skips the correlation plot and H2's ablation half)."""
    path = f"results/{wildcards.dataset}/validation/correlations.csv"
    made = any(
        str(o).endswith("validation/correlations.csv") for r in workflow.rules for o in r.output
    )
    return [path] if made or os.path.exists(path) else []
