#!/usr/bin/env bash
# Submit one stage (or the pipeline) to a Ray cluster as a job:
#   RAY_ADDRESS=http://127.0.0.1:8265 scripts/submit.sh STAGE [hydra overrides...]
# STAGE: build_data | sft | generate | train_dpo | train_reward | evaluate | pipeline. Waits for the job and returns its status.
# With Ray's token auth (the default), set RAY_AUTH_MODE=token: the token is read from ~/.ray/auth_token.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${1:?usage: scripts/submit.sh STAGE [hydra overrides...]}"
shift
[ -f "jobs/$STAGE.py" ] || { echo "error: unknown stage '$STAGE' (see jobs/)" >&2; exit 2; }
: "${RAY_ADDRESS:?set RAY_ADDRESS to the job server, e.g. http://127.0.0.1:8265}"
RAY="${RAY:-$(command -v ray || echo .venv/bin/ray)}"
exec "$RAY" job submit --address "$RAY_ADDRESS" --working-dir . --runtime-env cluster/runtime_env.yaml \
  -- python -m "jobs.$STAGE" "$@"
