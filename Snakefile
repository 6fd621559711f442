# layerkd: which layers of an LLM matter for recommendation, and how good is a student
# distilled from just those layers? The DAG is described in ../shared/DESIGN.md and README.md.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


# light steps run in the driver, not as cluster jobs (each SLURM job costs ~30 s of start-up)
localrules:
    all,
    fetch_raw,
    score,
    select,
    validation,
    layersets,
    evaluate_reference,
    report,
    compare_datasets,


include: "rules/data.smk"
include: "rules/teacher.smk"
include: "rules/analysis.smk"
include: "rules/student.smk"
include: "rules/evaluate.smk"


rule all:
    input:
        expand("results/{dataset}/report/summary.csv", dataset=DATASETS),
        VALIDATION,
        ACROSS,
    default_target: True
