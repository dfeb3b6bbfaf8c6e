#!/usr/bin/env bash
# Submit a Hydra multirun as one Ray job: every sweep point trains into its own folder and the job writes a
# sweep summary table.
#   RAY_ADDRESS=http://127.0.0.1:8265 scripts/sweep.sh train_dpo train.beta=0.05,0.1,0.3 'train.loss_type=[sigmoid],[ipo]'
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${1:?usage: scripts/sweep.sh STAGE sweep overrides...}"
shift
exec scripts/submit.sh "$STAGE" --multirun "$@"
