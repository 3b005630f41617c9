#!/usr/bin/env bash
# Install llama-cpp-python[server] for the remote-engine tests, built so it runs on every x86-64 machine of
# this project's kind (AMD EPYC and Intel Xeon with AVX-512 + AMX alike), then prove it answers.
#
#   scripts/build_llama_cpp.sh wheel          # compile the wheel into the cache (system python3; no venv needed,
#                                             # so `make` runs it beside the venv's own installs)
#   scripts/build_llama_cpp.sh install VENV   # install it into VENV (compiling first if needed), then check it runs
#
# Why not a plain `pip install llama-cpp-python[server]`: it has no binary wheel, and its sdist compiles ggml
# with GGML_NATIVE=ON, i.e. for the build machine's own instruction set. Built that way on an AMX Xeon, the
# server dies with a general protection fault in libggml-cpu.so on its first completion. So we compile with
# GGML_NATIVE=OFF, which gives ggml's portable x86-64 baseline (SSE4.2, AVX, AVX2, FMA, F16C, BMI2), and
# switch AVX-512 and AMX off explicitly. LLAVA_BUILD=OFF skips the multimodal library, which the server only
# imports for image models, and about halves the compile time.
#
# pip's own wheel cache keys a built wheel by its source, not by CMAKE_ARGS, so a native wheel cached by an
# earlier plain install would be reused silently. We build into a folder keyed by version + flags instead,
# and install from there; later runs (same flags) skip the compile.
set -euo pipefail
MODE="${1:?usage: build_llama_cpp.sh wheel | install VENV}"
VENV="${2:-}"
PYTHON="${PYTHON:-python3}"
VER=0.3.36
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF"
KEY=$(printf '%s %s' "$VER" "$FLAGS" | sha256sum | cut -c1-12)
CACHE="${WORKBENCH_CACHE:-${WORKBENCH_HOME:-$HOME/.cache/prompt-workbench}}"
WHEELS="$CACHE/wheels/llama-cpp-python-$VER-$KEY"

if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VER for a portable x86-64 baseline (no AVX-512, no AMX); ~5-10 min on 2 cores, once"
  mkdir -p "$WHEELS.tmp"
  t0=$SECONDS
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$WHEELS.tmp" "llama-cpp-python==$VER"
  rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
  echo "built in $(( SECONDS - t0 )) s: $WHEELS"
fi
[ "$MODE" = wheel ] && exit 0
"$VENV/bin/pip" install -q --find-links "$WHEELS" --only-binary llama-cpp-python "llama-cpp-python[server]==$VER"
# The build is only useful if the server answers on this CPU: check it now, not 15 minutes into the tests.
"$VENV/bin/python" "$(dirname "$0")/check_llama_cpp.py"
