#!/usr/bin/env bash
# GPU check (<= 8 minutes) for a single-GPU machine with torch, transformers, peft and accelerate but not ray, trl,
# deepspeed or vllm, and no network: installs the missing pieces from scripts/gpu_wheels (scripts/fetch_gpu_wheels.sh),
# then runs SFT and DPO steps of a randomly initialised ~0.5B model (Qwen2.5-0.5B shape) with DeepSpeed ZeRO-2 in
# bf16 through TRL, printing tokens/s and MFU, and the hf backend's decoder (the evaluate stage's, on the GPU) against
# transformers' generate on the same model. Results also go to $OUT/gpu_check.json when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
[ -d gpu_wheels ] || { echo "error: scripts/gpu_wheels is missing: run scripts/fetch_gpu_wheels.sh first" >&2; exit 2; }
"$PY" -m pip install -q --no-index --find-links gpu_wheels setuptools wheel
"$PY" -m pip install -q --no-index --find-links gpu_wheels --no-build-isolation trl datasets deepspeed
export RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT="${MASTER_PORT:-29511}"
export PYTHONPATH="$(cd .. && pwd)${PYTHONPATH:+:$PYTHONPATH}"   # the hf decoder check imports nba_dpo
export TORCH_EXTENSIONS_DIR="${TMPDIR:-/tmp}/nba_dpo_torch_ext" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout 470 "$PY" gpu_check.py "$@"
