#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the freshly created envs/layerkd.yaml environment, from the
# workflow directory: make the layerkd package importable by the rules' scripts. Dependencies
# are already pinned by the env file, so nothing else is resolved here.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation --editable .
