#!/usr/bin/env bash
# Set up .venv and run the whole pipeline on the embedded default (simulated NBA data, tiny model, local Ray, CPU):
# build_data -> sft -> evaluate -> generate -> train_dpo -> evaluate -> report. Rerunning resumes: finished stages
# are skipped. Extra arguments are Hydra overrides for jobs.pipeline (e.g. pipeline.rounds=2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
ARTIFACTS="${ARTIFACTS:-artifacts/demo}"
python -m jobs.pipeline experiment=demo paths.artifacts="$ARTIFACTS" "$@"
