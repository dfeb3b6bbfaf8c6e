#!/usr/bin/env bash
# Place beside gpu_check.sh the packages a bare GPU machine lacks (trl, datasets, deepspeed sdist and their small
# dependencies; ~8 MB), for a Python 3.12 x86_64 machine that has torch, transformers, peft and accelerate but no
# network. Run it where PyPI is reachable; then carry scripts/gpu_wheels along with the checkout.
set -euo pipefail
cd "$(dirname "$0")"
PIP="${PIP:-../.venv/bin/pip}"
PY="${GPU_PYTHON_VERSION:-3.12}"
ABI="cp${PY/./}"
mkdir -p gpu_wheels
"$PIP" download -q --no-deps -d gpu_wheels --only-binary=:all: --python-version "$PY" --implementation cp \
  --abi "$ABI" --abi abi3 --abi none --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 trl==1.16.0 datasets==5.2.0 "dill<0.4.2" "multiprocess<0.70.20" hjson pydantic \
  pydantic-core annotated-types typing-inspection typing-extensions jinja2 markupsafe setuptools wheel
"$PIP" download -q --no-deps --no-binary=:all: -d gpu_wheels deepspeed==0.19.8
du -sh gpu_wheels
