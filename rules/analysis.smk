# Analysis: importance scores per method (ablation measured by its own sweep), agreement between
# methods, selections per strategy and k, the screen of every layer set, distinct layer sets.

ruleorder: ablation > greedy > score


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
        method="{method}",
        hybrid_weights=config["hybrid_weights"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/score.py"


rule ablation:
    input:
        teacher="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
    output:
        scores="results/{dataset}/scores/ablation.json",
    log:
        "logs/{dataset}/ablation.log",
    benchmark:
        "results/{dataset}/benchmarks/ablation.tsv"
    params:
        max_samples=config["ablation"]["max_samples"],
        batch_size=config["teacher"]["batch_size"],
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        w_rating=config["teacher"]["finetune"]["w_rating"],
        **PLACEMENT,
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/ablation.py"


rule greedy:
    input:
        teacher="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
    output:
        scores="results/{dataset}/scores/greedy.json",
    log:
        "logs/{dataset}/greedy.log",
    benchmark:
        "results/{dataset}/benchmarks/greedy.tsv"
    params:
        max_samples=config["greedy"]["max_samples"],
        batch_size=config["teacher"]["batch_size"],
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        w_rating=config["teacher"]["finetune"]["w_rating"],
        # the removal order goes down to the smallest selection.k
        k=min(config["selection"]["k"])
        if isinstance(config["selection"]["k"], list)
        else config["selection"]["k"],
        **PLACEMENT,
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/greedy.py"


rule validation:
    input:
        scores=expand("results/{{dataset}}/scores/{method}.json", method=config["methods"]),
    output:
        csv="results/{dataset}/validation/correlations.csv",
        md="results/{dataset}/validation/correlations.md",
        png="results/{dataset}/validation/spearman.png",
    log:
        "logs/{dataset}/validation.log",
    benchmark:
        "results/{dataset}/benchmarks/validation.tsv"
    params:
        methods=config["methods"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/validation.py"


rule select:
    input:
        scores=score_input,
        stats="results/{dataset}/teacher/cache_stats.npz",
    output:
        selection="results/{dataset}/selections/{method}__{strategy}__k{k}.json",
    log:
        "logs/{dataset}/select_{method}__{strategy}__k{k}.log",
    benchmark:
        "results/{dataset}/benchmarks/select_{method}__{strategy}__k{k}.tsv"
    params:
        name="{method}__{strategy}__k{k}",
        seed=config["selection"]["seed"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/select.py"


rule screen:
    input:
        teacher="results/{dataset}/teacher/final",
        features="results/{dataset}/teacher/item_features.pt",
        item_table="data/processed/{dataset}/items.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        cache="results/{dataset}/teacher/cache.json",
        selections=selection_files_k,
    output:
        csv="results/{dataset}/screen/k{k}.csv",
        png="results/{dataset}/screen/k{k}.png",
    log:
        "logs/{dataset}/screen_k{k}.log",
    benchmark:
        "results/{dataset}/benchmarks/screen_k{k}.tsv"
    params:
        k=wildcard_int("k"),
        steps=config["selection"]["screen"]["steps"],
        random_search=config["selection"]["random_search"],
        seed=config["selection"]["seed"],
        max_prompt_tokens=config["teacher"]["max_prompt_tokens"],
        # at init only, just what the score reads: a training setting does not rerun it
        distill_cfg=screen_distill_settings(config),
        **PLACEMENT,
    threads: HEAVY
    conda:
        "../envs/layerkd.yaml"
    resources:
        mem_mb=16000,
    script:
        "../scripts/screen.py"


checkpoint layersets:
    input:
        selections=distilled_selection_files,
        every_selection=selection_files,
        # always upstream (so `--until layersets` covers the screen); read only with distill: screen
        screens=screen_files,
    output:
        layersets=directory("results/{dataset}/layersets"),
    log:
        "logs/{dataset}/layersets.log",
    benchmark:
        "results/{dataset}/benchmarks/layersets.tsv"
    params:
        distilled=DISTILLED,
        top=config["selection"]["screen"]["top"] if SCREENED else 0,
        random_search=config["selection"]["random_search"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/layersets.py"
