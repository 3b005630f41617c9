#!/usr/bin/env bash
# Install PyTorch before the project so pip never pulls a multi-GB CUDA build on a CPU-only box.
#   - a machine with an NVIDIA GPU: leave torch to pip (the default wheel has CUDA);
#   - a CPU-only machine with a local CPU wheel (this project's dev/CI machines): use it;
#   - a CPU-only machine otherwise: PyTorch's CPU wheel index, falling back to PyPI.
set -euo pipefail
PIP="$1/bin/pip"
if "$1/bin/python" -c "import torch" 2>/dev/null; then exit 0; fi
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "GPU found: torch comes from PyPI with the project"; exit 0
fi
wheel=$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$wheel" ]; then
  ver=$(basename "$wheel" | cut -d- -f2 | cut -d+ -f1)
  "$PIP" install -q "torch==$ver"
else
  "$PIP" install -q torch --index-url https://download.pytorch.org/whl/cpu || "$PIP" install -q torch
fi
