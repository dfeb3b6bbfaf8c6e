#!/usr/bin/env bash
# Set up .venv (first run: a few minutes) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
python -m pytest "${@:--q}"
