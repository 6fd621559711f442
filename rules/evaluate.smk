# Evaluation of every model on the same test candidates, then the report.


rule evaluate_teacher:
    input:
        model="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
    output:
        metrics="results/{dataset}/eval/teacher.json",
    log:
        "logs/{dataset}/evaluate_teacher.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_teacher.tsv"
    params:
        name="teacher",
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        evaluation=config["eval"],
        **PLACEMENT,
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/evaluate.py"


rule evaluate_student:
    input:
        model="results/{dataset}/students/{layerset}__{mode}__s{seed}/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
    output:
        metrics="results/{dataset}/eval/student/{layerset}__{mode}__s{seed}.json",
    log:
        "logs/{dataset}/evaluate_student_{layerset}__{mode}__s{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_student_{layerset}__{mode}__s{seed}.tsv"
    params:
        name="student/{layerset}__{mode}__s{seed}",
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        evaluation=config["eval"],
        **PLACEMENT,
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/evaluate.py"


rule evaluate_reference:
    input:
        samples="data/processed/{dataset}/samples.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
        item_table="data/processed/{dataset}/items.parquet",
    output:
        random="results/{dataset}/eval/random.json",
        popular="results/{dataset}/eval/popular.json",
    log:
        "logs/{dataset}/evaluate_reference.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_reference.tsv"
    params:
        evaluation=config["eval"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/evaluate_reference.py"


rule train_sasrec:
    input:
        samples="data/processed/{dataset}/samples.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
        item_table="data/processed/{dataset}/items.parquet",
    output:
        model="results/{dataset}/sasrec/model.pt",
        table="results/{dataset}/sasrec/item_table.pt",
        train_log="results/{dataset}/sasrec/train_log.parquet",
    log:
        "logs/{dataset}/train_sasrec.log",
    benchmark:
        "results/{dataset}/benchmarks/train_sasrec.tsv"
    params:
        sasrec=config["sasrec"],
        primary=config["eval"]["primary"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/train_sasrec.py"


rule evaluate_sasrec:
    input:
        samples="data/processed/{dataset}/samples.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
        item_table="data/processed/{dataset}/items.parquet",
        model="results/{dataset}/sasrec/model.pt",
        train_log="results/{dataset}/sasrec/train_log.parquet",
    output:
        metrics="results/{dataset}/eval/sasrec.json",
    log:
        "logs/{dataset}/evaluate_sasrec.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_sasrec.tsv"
    params:
        evaluation=config["eval"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/evaluate_sasrec.py"


rule report:
    input:
        evals=all_evals,
        scores=expand("results/{{dataset}}/scores/{method}.json", method=config["methods"]),
        selections=selection_files,
        finetune_log="results/{dataset}/teacher/finetune_log.parquet",
        train_logs=student_train_logs,
        validation=validation_table,
        screens=screen_files,
    output:
        csv=report(
            "results/{dataset}/report/summary.csv",
            caption="../report/summary_csv.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "summary (CSV, one row per selection)"},
        ),
        md="results/{dataset}/report/summary.md",
        json="results/{dataset}/report/summary.json",
        html=report(
            "results/{dataset}/report/summary.html",
            caption="../report/summary.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "summary and hypotheses"},
        ),
        tex="results/{dataset}/report/summary.tex",
        comparisons=report(
            "results/{dataset}/report/comparisons.csv",
            caption="../report/comparisons.rst",
            category="Tables",
            labels={"dataset": "{dataset}", "table": "paired tests (CSV)"},
        ),
        hypotheses="results/{dataset}/report/hypotheses.json",
        plots=report(
            directory("results/{dataset}/report/plots"),
            patterns=["{plot}.png"],
            caption="../report/plots.rst",
            category="Plots",
            labels={"dataset": "{dataset}", "plot": "{plot}"},
        ),
    log:
        "logs/{dataset}/report.log",
    benchmark:
        "results/{dataset}/benchmarks/report.tsv"
    params:
        dataset="{dataset}",
        n_boot=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
        primary=config["eval"]["primary"],
        synthetic=is_synthetic,
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/report.py"


rule compare_datasets:
    input:
        scores=expand(
            "results/{dataset}/scores/{method}.json", dataset=DATASETS, method=config["methods"]
        ),
        hypotheses=expand("results/{dataset}/report/hypotheses.json", dataset=DATASETS),
    output:
        md="results/datasets/comparison.md",
        csv="results/datasets/importance_spearman.csv",
    log:
        "logs/compare_datasets.log",
    benchmark:
        "results/datasets/benchmarks/compare_datasets.tsv"
    params:
        datasets=DATASETS,
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/compare_datasets.py"
