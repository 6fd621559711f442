# Students: one per distinct layer set, built from the teacher and distilled offline.


rule build_student:
    input:
        teacher="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        layerset="results/{dataset}/layersets/{layerset}.json",
    output:
        init=directory("results/{dataset}/students/{layerset}/init"),
    log:
        "logs/{dataset}/build_student_{layerset}.log",
    benchmark:
        "results/{dataset}/benchmarks/build_student_{layerset}.tsv"
    params:
        mode=config["student"]["modes"][0],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/build_student.py"


rule distill:
    input:
        init="results/{dataset}/students/{layerset}/init",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        cache="results/{dataset}/teacher/cache.pt",
    output:
        final=directory("results/{dataset}/students/{layerset}/final"),
        train_log="results/{dataset}/students/{layerset}/train_log.parquet",
    log:
        "logs/{dataset}/distill_{layerset}.log",
    benchmark:
        "results/{dataset}/benchmarks/distill_{layerset}.tsv"
    params:
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        distill=config["distill"],
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    resources:
        mem_mb=16000,
    script:
        "../scripts/distill.py"
