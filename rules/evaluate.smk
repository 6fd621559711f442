# Evaluation of every model on the same test candidates, then the report.


rule evaluate_teacher:
    input:
        model="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
    output:
        metrics="results/{dataset}/eval/teacher.json",
    log:
        "logs/{dataset}/evaluate_teacher.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_teacher.tsv"
    params:
        name="teacher",
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        eval=config["eval"],
    threads: HEAVY
    script:
        "../scripts/evaluate.py"


rule evaluate_student:
    input:
        model="results/{dataset}/students/{layerset}/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
    output:
        metrics="results/{dataset}/eval/student/{layerset}.json",
    log:
        "logs/{dataset}/evaluate_student_{layerset}.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_student_{layerset}.tsv"
    params:
        name="student/{layerset}",
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        eval=config["eval"],
    threads: HEAVY
    script:
        "../scripts/evaluate.py"


rule evaluate_reference:
    input:
        samples="data/processed/{dataset}/samples.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
    output:
        random="results/{dataset}/eval/random.json",
        popular="results/{dataset}/eval/popular.json",
    log:
        "logs/{dataset}/evaluate_reference.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate_reference.tsv"
    params:
        eval=config["eval"],
    threads: 1
    script:
        "../scripts/evaluate_reference.py"


rule report:
    input:
        evals=all_evals,
    output:
        csv="results/{dataset}/report/summary.csv",
        md="results/{dataset}/report/summary.md",
        json="results/{dataset}/report/summary.json",
    log:
        "logs/{dataset}/report.log",
    benchmark:
        "results/{dataset}/benchmarks/report.tsv"
    params:
        dataset="{dataset}",
    threads: 1
    script:
        "../scripts/report.py"
