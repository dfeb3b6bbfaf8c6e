#!/usr/bin/env bash
# Set up .venv (first run: a few minutes) and run the test suite. Arguments go to pytest instead of the default.
# The default runs two pytest-xdist workers: a quarter of a serial run's time leaves the CPUs idle (Ray's timeouts
# and heartbeats, single-threaded imports), which the second worker fills; tests that share a costly fixture stay on
# one worker, and the longest units start first (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
if [ $# -eq 0 ]; then set -- -q -n 2 --dist loadgroup --no-loadscope-reorder; fi
python -m pytest "$@"
