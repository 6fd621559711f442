# Helpers shared by every rule: config validation (the schema holds every default), dataset
# lookup, the placement of torch steps, the selection list and the checkpoint-driven list of
# distinct layer sets.

from snakemake.utils import validate

from layerkd.config import (
    cache_needs_hidden,
    check_config,
    distilled_names,
    k_values,
    screen_distill_settings,
    selection_names,
)

validate(config, schema="../config/schema.yaml", set_default=True)
check_config(config)

DATASETS = [d["name"] for d in config["datasets"]]
SELECTIONS = selection_names(config)
DISTILLED = distilled_names(config)
# every distinct layer set of each k is screened; with distill: screen the screen picks students
K_VALUES = k_values(config)
SCREENED = config["selection"]["distill"] == "screen"
# method agreement needs at least two methods
VALIDATION = (
    expand("results/{dataset}/validation/correlations.csv", dataset=DATASETS)
    if len(config["methods"]) > 1
    else []
)
# with several datasets, one page compares their hypotheses and layer importance
ACROSS = ["results/datasets/comparison.md"] if len(DATASETS) > 1 else []
HEAVY = config["threads"] or workflow.cores  # torch steps: all cores by default
# where every torch step runs: `params: **PLACEMENT` gives it device, dtype and device_map
PLACEMENT = {k: config["teacher"][k] for k in ("device", "dtype", "device_map")}
# the cache keeps every layer's hidden states only when a later step reads them
CACHE_HIDDEN = cache_needs_hidden(config)


wildcard_constraints:
    dataset="|".join(DATASETS),
    method="[a-z_]+",
    strategy="[a-z_]+(-[0-9]+)?",
    layerset="L[0-9-]+",
    shard="[0-9]+",
    k="[0-9]+",
    mode="keep|compact",
    build="keep|compact__s[0-9]+",
    seed="[0-9]+",


def wildcard_int(name):
    """A params function giving the integer value of wildcard ``name``."""

    def value(wildcards):
        return int(wildcards[name])

    return value


def dataset_cfg(wildcards):
    """The config entry of ``{dataset}``."""
    return next(d for d in config["datasets"] if d["name"] == wildcards.dataset)


def is_synthetic(wildcards):
    """Whether ``{dataset}`` comes from the built-in generator (the report says so)."""
    return dataset_cfg(wildcards)["source"] == "synthetic"


def teacher_item_inputs(wildcards):
    """What the teacher's item inputs are made of: the items, and in the ID modes of
    ``teacher.items`` (ids, hybrid) the item table the DAG's SASRec learned."""
    inputs = {"item_table": f"data/processed/{wildcards.dataset}/items.parquet"}
    if config["teacher"]["items"] != "text":
        inputs["sasrec_table"] = f"results/{wildcards.dataset}/sasrec/item_table.pt"
    return inputs


def score_input(wildcards):
    """The score file a selection reads (none for the score-free baselines)."""
    if wildcards.method == "none":
        return []
    return [f"results/{wildcards.dataset}/scores/{wildcards.method}.json"]


def selection_files(wildcards):
    """Every selection of a dataset."""
    return [f"results/{wildcards.dataset}/selections/{s}.json" for s in SELECTIONS]


def selection_files_k(wildcards):
    """Every selection of a dataset with ``{k}`` layers (what one screen job scores)."""
    return [p for p in selection_files(wildcards) if p.endswith(f"__k{wildcards.k}.json")]


def screen_files(wildcards):
    """The screen table of every k of a dataset."""
    return [f"results/{wildcards.dataset}/screen/k{k}.csv" for k in K_VALUES]


def distilled_selection_files(wildcards):
    """The selections whose layer sets get a student (``selection.distill``)."""
    return [f"results/{wildcards.dataset}/selections/{s}.json" for s in DISTILLED]


def cache_shards(wildcards):
    """The teacher cache shards of a dataset."""
    n = config["teacher"]["shards"]
    return [f"results/{wildcards.dataset}/teacher/cache/shard{i}" for i in range(n)]


def student_evals(wildcards):
    """Evaluation files of every student: distinct layer set x mode x seed (known once the
    layersets checkpoint ran)."""
    return [f"results/{wildcards.dataset}/eval/student/{s}.json" for s in students(wildcards)]


def all_evals(wildcards):
    """Teacher, students and the reference rankers (random, most-popular, SASRec)."""
    base = f"results/{wildcards.dataset}/eval"
    refs = [f"{base}/{name}.json" for name in ("teacher", "random", "popular", "sasrec")]
    return refs + student_evals(wildcards)


def student_train_logs(wildcards):
    """Distillation logs of every distinct layer set (known once the checkpoint ran)."""
    base = f"results/{wildcards.dataset}/students"
    return [f"{base}/{s}/train_log.parquet" for s in students(wildcards)]


def validation_table(wildcards):
    """The method-agreement table (``rule validation``) when the config makes one (two or more
    methods), else none: the report then skips the correlation plot and H2's ablation half."""
    path = f"results/{wildcards.dataset}/validation/correlations.csv"
    return [path] if path in VALIDATION else []


def students(wildcards):
    """Every student id ``{layerset}__{mode}__s{seed}`` of a dataset: each distinct layer set
    (from the layersets checkpoint) x ``student.modes`` x ``distill.seeds``; compact students
    only for the layer sets of ``student.compact.selections`` when that list is set."""
    from layerkd.student.build import student_ids

    out = checkpoints.layersets.get(dataset=wildcards.dataset).output[0]
    modes, seeds = config["student"]["modes"], config["distill"]["seeds"]
    return student_ids(out, modes, seeds, config["student"]["compact"]["selections"])


def student_init(wildcards):
    """The init a student is distilled from: one per layer set for keep students (copied
    teacher layers do not depend on the seed), one per seed for compact ones."""
    build = "keep" if wildcards.mode == "keep" else f"compact__s{wildcards.seed}"
    return f"results/{wildcards.dataset}/students/inits/{wildcards.layerset}__{build}"


def build_mode(wildcards):
    """The student mode of a build (``keep`` or ``compact__s{seed}``)."""
    return wildcards.build.split("__")[0]


def build_seed(wildcards):
    """The seed of a compact build; 0 for a keep build (its weights do not use it)."""
    return int(wildcards.build.split("__s")[1]) if "__s" in wildcards.build else 0


def compact_params(wildcards):
    """The compact-student settings of a compact build (nothing for keep students, so compact
    settings never rerun them)."""
    if build_mode(wildcards) != "compact":
        return {}
    return {k: v for k, v in config["student"]["compact"].items() if k != "selections"}


def distill_params(wildcards):
    """Distillation settings (the seed comes from the student id, so adding a seed to
    ``distill.seeds`` does not rerun the students of the others)."""
    return {k: v for k, v in config["distill"].items() if k != "seeds"}
