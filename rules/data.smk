# Data: fetch (download, mirror or generate) the raw files, then prepare samples.


rule fetch_raw:
    output:
        manifest="data/raw/{dataset}/MANIFEST.json",
    log:
        "logs/{dataset}/fetch_raw.log",
    benchmark:
        "results/{dataset}/benchmarks/fetch_raw.tsv"
    params:
        dataset=dataset_cfg,
        mirror=config["data"]["mirror"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/fetch_raw.py"


rule prepare_data:
    input:
        manifest="data/raw/{dataset}/MANIFEST.json",
    output:
        item_table="data/processed/{dataset}/items.parquet",
        interactions="data/processed/{dataset}/interactions.parquet",
        samples="data/processed/{dataset}/samples.parquet",
        stats="data/processed/{dataset}/stats.json",
    log:
        "logs/{dataset}/prepare_data.log",
    benchmark:
        "results/{dataset}/benchmarks/prepare_data.tsv"
    params:
        dataset=dataset_cfg,
        data=config["data"],
    threads: 1
    conda:
        "../envs/layerkd.yaml"
    script:
        "../scripts/prepare_data.py"
