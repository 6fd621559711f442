# Analysis: importance scores per method, selections per strategy, distinct layer sets.


rule score:
    input:
        stats="results/{dataset}/teacher/cache_stats.npz",
    output:
        scores="results/{dataset}/scores/{method}.json",
    log:
        "logs/{dataset}/score_{method}.log",
    benchmark:
        "results/{dataset}/benchmarks/score_{method}.tsv"
    params:
        hybrid_weights=config.get("hybrid_weights", {}),
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/score.py"


rule select:
    input:
        scores=score_input,
        stats="results/{dataset}/teacher/cache_stats.npz",
    output:
        selection="results/{dataset}/selections/{method}__{strategy}.json",
    log:
        "logs/{dataset}/select_{method}__{strategy}.log",
    benchmark:
        "results/{dataset}/benchmarks/select_{method}__{strategy}.tsv"
    params:
        k=config["selection"]["k"],
        seed=config["selection"].get("seed", 0),
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/select.py"


checkpoint layersets:
    input:
        selections=selection_files,
    output:
        directory("results/{dataset}/layersets"),
    log:
        "logs/{dataset}/layersets.log",
    benchmark:
        "results/{dataset}/benchmarks/layersets.tsv"
    params:
        selections=SELECTIONS,
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/layersets.py"
