# Students: one per distinct layer set, mode and seed ({layerset}__{mode}__s{seed}), built from
# the teacher and distilled offline from the teacher cache (the teacher is never run here).


rule build_student:
    input:
        teacher="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        layerset="results/{dataset}/layersets/{layerset}.json",
        cache="results/{dataset}/teacher/cache.json",
    output:
        # a keep student's init does not depend on the seed: one init serves every seed
        init=directory("results/{dataset}/students/inits/{layerset}__{build}"),
    log:
        "logs/{dataset}/build_student_{layerset}__{build}.log",
    benchmark:
        "results/{dataset}/benchmarks/build_student_{layerset}__{build}.tsv"
    params:
        mode=build_mode,
        seed=build_seed,
        compact=compact_params,
        trim_vocab=config["student"]["trim_vocab"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/build_student.py"


rule distill:
    input:
        init=student_init,
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        cache="results/{dataset}/teacher/cache.json",
    output:
        final=directory("results/{dataset}/students/{layerset}__{mode}__s{seed}/final"),
        train_log="results/{dataset}/students/{layerset}__{mode}__s{seed}/train_log.parquet",
    log:
        "logs/{dataset}/distill_{layerset}__{mode}__s{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/distill_{layerset}__{mode}__s{seed}.tsv"
    params:
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        distill_cfg=distill_params,
        seed=wildcard_int("seed"),
        checkpoints="results/{dataset}/students/{layerset}__{mode}__s{seed}/checkpoints",
        **PLACEMENT,
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    resources:
        mem_mb=16000,
    script:
        "../scripts/distill.py"
