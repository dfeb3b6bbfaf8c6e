#!/usr/bin/env bash
# Set up .venv and run the pipeline end to end on the embedded default (simulated NBA data, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
ARTIFACTS="${ARTIFACTS:-artifacts/demo}"
python -m jobs.build_data paths.artifacts="$ARTIFACTS" "$@"
echo "[demo] outputs in $ARTIFACTS"
