#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install vLLM, serve the default model's weights with it, and
# run the remote-engine parity test (workbench eval through vLLM = local scoring = lm_eval
# local-completions) against that real server. Not run on the CPU-only development machine.
#
#   bench/remote_vllm_check.sh            # after `make setup`; PORT, VLLM_VENV, DTYPE may be set
#
# vLLM goes into its own venv (it pins its own torch); the workbench's venv runs the test.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8011}
VLLM_VENV=${VLLM_VENV:-.vllm-venv}
DTYPE=${DTYPE:-float32}          # fp32 so log-probs match the local fp32 run closely
NAME=HuggingFaceTB/SmolLM2-135M-Instruct
PY=.venv/bin/python

test -x "$PY" || { echo "run 'make setup' first" >&2; exit 2; }
MODEL_DIR=$(.venv/bin/workbench models path default)      # the same weights local scoring uses
test -x "$VLLM_VENV/bin/vllm" || { python3 -m venv "$VLLM_VENV" && "$VLLM_VENV/bin/pip" install -q vllm; }
"$VLLM_VENV/bin/python" -c "import vllm; print('vllm', vllm.__version__)"

"$VLLM_VENV/bin/vllm" serve "$MODEL_DIR" --served-model-name "$NAME" --host 127.0.0.1 --port "$PORT" \
    --dtype "$DTYPE" --max-model-len 2048 --gpu-memory-utilization 0.3 > vllm_server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
    kill -0 $SERVER 2>/dev/null || { tail -50 vllm_server.log; exit 1; }
    sleep 2
done
curl -sf "http://127.0.0.1:$PORT/v1/models"; echo

WORKBENCH_TEST_REMOTE_URL="openai:http://127.0.0.1:$PORT/v1#$NAME" \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_remote.py -k "matches_local_and_lm_eval" -rA
