#!/usr/bin/env bash
# Create ./.venv and install salesforecast with its test tools.
# torch goes first and pinned: its CPU wheel is what we test with, and an unpinned torch would
# pull a multi-GB CUDA build. Set TORCH_SPEC to choose another build (e.g. a CUDA one on a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "installed: $(.venv/bin/salesforecast --help >/dev/null && echo salesforecast) in $(pwd)/.venv"
