#!/usr/bin/env bash
# One-command GPU measurement of Prompt Workbench against lm-eval and Trainer+peft, on random-weight
# Llama models built on the device (no weights travel). Run from the repo root, with .gpu/ beside it
# (bench/gpu_prepare.sh makes it: wheels the image lacks + 1,000 BBC rows + the SmolLM2 tokenizer):
#
#     OUT=/results bash bench/gpu_check.sh                       # the GPU run (~7 min, deadline BUDGET_S)
#     DEVICE=cpu SIZE=tiny PY=.venv/bin/python OUT=/tmp/x bash bench/gpu_check.sh   # CPU dry run
#
# Settings (environment): DEVICE cuda|cpu, SIZE full|tiny, PY, OUT (results), WORK (scratch), SITE
# (wheel --target), BUDGET_S (whole-run deadline: no step starts after it, each step's timeout is cut
# to what is left), N (rows). Every step runs under `timeout`; a failed step does not stop the others.
# Most important figures first: 1.1B bf16 workbench vs lm-eval, fp32 parity, LoRA vs Trainer+peft,
# 8B shape, then the phrase and 8-shot cases.
# $OUT gets (<= 8 files): summary.json, table.md, run.log, compare_single.json, extras.tar.gz
# (every step's log and result file).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEVICE="${DEVICE:-cuda}"
SIZE="${SIZE:-full}"
PY="${PY:-python3}"
OUT="${OUT:-/tmp/gpuout}"
WORK="${WORK:-/tmp/gpuwork}"
SITE="${SITE:-/tmp/gpusite}"
BUDGET_S="${BUDGET_S:-400}"
DEADLINE=$(( SECONDS + BUDGET_S ))
GD="$ROOT/.gpu/data"
if [ "$SIZE" = tiny ]; then
  N="${N:-40}"; BIG="$WORK/models/randtiny"; HUGE="$WORK/models/randtinybig"; BIGSZ=tiny; HUGESZ=tinybig
  TRAIN_STEPS=4; BT_STEPS=4; BT_BATCH=8
else
  N="${N:-1000}"; BIG=/tmp/rand1b; HUGE=/tmp/rand8b; BIGSZ=1b; HUGESZ=8b
  TRAIN_STEPS=30; BT_STEPS=20; BT_BATCH=8
fi
DATA="$GD/bbc1000.jsonl"
TPL="$GD/bbc_headline_topic.yaml"
TPL_PH="$GD/bbc_headline_phrase_topic.yaml"
export ROOT DEVICE SIZE PY OUT WORK SITE N BIG HUGE DATA TPL TPL_PH BT_BATCH

rm -rf "$WORK"
mkdir -p "$OUT" "$WORK/logs" "$WORK/models"
exec > >(tee -a "$OUT/run.log") 2>&1
TEE_PID=$!
export PYTHONUNBUFFERED=1 WORKBENCH_HOME="$WORK/wbhome" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME="$WORK/hf" TOKENIZERS_PARALLELISM=false TQDM_MININTERVAL=5 HF_HUB_DISABLE_TELEMETRY=1
[ "$DEVICE" = cpu ] && export CUDA_VISIBLE_DEVICES=""

now() { date +%s.%N; }
# step NAME TIMEOUT_S [MIN_LEFT_S] -- CMD...   (MIN_LEFT_S: skip unless that much time is left)
step() {
  local name=$1 t=$2 need=15; shift 2
  if [ "$1" != "--" ]; then need=$1; shift; fi
  shift
  local left=$(( DEADLINE - SECONDS ))
  if (( left < need )); then
    echo "=== [$name] SKIPPED: ${left}s left, needs ${need}s"
    echo "{\"step\": \"$name\", \"rc\": null, \"wall_s\": null, \"skipped\": \"${left}s left of the ${BUDGET_S}s budget\"}" >> "$WORK/steps.jsonl"
    return 99
  fi
  (( t > left )) && t=$left
  echo
  echo "=== [$name] $(date +%T) (timeout ${t}s, ${left}s left): $*"
  # a shell function runs in a child bash (timeout runs programs only); its variables are exported
  if declare -F "$1" >/dev/null; then set -- bash -c "$(declare -f "$1"); \"\$@\"" _ "$@"; fi
  local t0; t0=$(now)
  timeout --kill-after=15 "$t" "$@" 2>&1 | tee "$WORK/logs/$name.log"
  local rc=${PIPESTATUS[0]}
  local wall; wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')
  (( rc == 124 || rc == 137 )) && echo "=== [$name] TIMED OUT after ${t}s"
  echo "=== [$name] rc=$rc wall=${wall}s"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"wall_s\": $wall, \"timeout_s\": $t}" >> "$WORK/steps.jsonl"
  return "$rc"
}

echo "prompt-workbench GPU check: DEVICE=$DEVICE SIZE=$SIZE N=$N PY=$PY OUT=$OUT WORK=$WORK budget ${BUDGET_S}s"
date -u; git log -1 --format='commit %H %s' 2>/dev/null
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm --format=csv
nproc; free -g | head -2; df -h /tmp | tail -1

# a. wheels the image lacks (bench/gpu_pick_wheels.py), versions, the matmul rate MFU is measured against
do_install() {
  rm -rf "$SITE"
  local wheels; wheels=$("$PY" bench/gpu_pick_wheels.py "$ROOT/.gpu/whl") || wheels=$(ls "$ROOT"/.gpu/whl/*.whl)
  [ -z "$wheels" ] && { echo "no wheels to install"; return 0; }
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $wheels
}
step install 90 -- do_install
export PYTHONPATH="$SITE:$ROOT:$ROOT/bench"
step env 60 -- "$PY" bench/gpu_helpers.py env --device "$DEVICE" --out "$WORK/env.json"

# b. the 1.1B model (random, seeded), built on the device
step models 150 -- "$PY" bench/gpu_model.py "$BIGSZ:$BIG" --device "$DEVICE" --dtype bfloat16

wb() {  # STEP TIMEOUT MIN_LEFT MODEL OUT [extra args]
  local name=$1 t=$2 need=$3 model=$4 out=$5; shift 5
  step "$name" "$t" "$need" -- "$PY" -m workbench.cli eval --device "$DEVICE" --data "$DATA" --split all --limit "$N" \
    --seed 1 --no-registry --model "$model" --out "$out" "$@"
}
lmeval() {  # STEP TIMEOUT MIN_LEFT TASKDIR DTYPE
  local task; task=$(cat "$4/task_name.txt" 2>/dev/null || echo missing_task)
  step "$1" "$2" "$3" -- "$PY" -m lm_eval --model hf --device "$DEVICE" --batch_size auto --tasks "$task" \
    --include_path "$4" --log_samples --model_args "pretrained=$BIG,dtype=$5" --output_path "$WORK/$1"
}
compare() {  # STEP TEMPLATE SHOTS TASKDIR LM_BF16 LM_FP32 OURS OURS_TF OURS_FP32
  step "$1" 60 5 -- "$PY" bench/gpu_helpers.py compare --template "$2" --data "$DATA" --limit "$N" --shots "$3" --seed 1 \
    --work "$4" --lmeval-dir "$WORK/$5" --lmeval-fp32-dir "$WORK/$6" --ours "$7" --ours-tf "$8" --ours-fp32 "$9" \
    --out "$WORK/$1.json"
}

# c. 1.1B, bf16, bbc_headline_topic: workbench (first load runs fastpath's check, then as users get it) vs lm-eval
wb wb_1b_cold 150 30 "$BIG" "$WORK/wb_1b_cold.json" --template "$TPL" --dtype bfloat16
wb wb_1b 120 30 "$BIG" "$WORK/wb_1b.json" --template "$TPL" --dtype bfloat16
step lmeval_prep 60 -- "$PY" bench/gpu_helpers.py prep-lmeval --template "$TPL" --data "$DATA" --limit "$N" --shots 0 --seed 1 --work "$WORK/task_single"
lmeval lmeval_1b 200 40 "$WORK/task_single" bfloat16
# d. fp32 parity: both tools in float32 (predictions must be identical)
wb wb_1b_fp32 120 30 "$BIG" "$WORK/wb_1b_fp32.json" --template "$TPL" --dtype float32
lmeval lmeval_1b_fp32 200 40 "$WORK/task_single" float32
compare compare_single "$TPL" 0 "$WORK/task_single" lmeval_1b lmeval_1b_fp32 "$WORK/wb_1b.json" "$WORK/wb_1b_tf.json" "$WORK/wb_1b_fp32.json"

# e. LoRA on the 1.1B: bench_training.py (ours vs Trainer+peft, same model/data/batch/lengths)
step stub_bbc 30 5 -- "$PY" bench/gpu_helpers.py stub-bbc --data "$DATA" --dest "$WORK/c4c"
do_bench_training() {
  PYTHONPATH="$WORK/c4c:$PYTHONPATH" "$PY" bench/bench_training.py --model "$1" --steps "$2" --batch "$BT_BATCH" \
    --reps 1 --json "$3"
}
step bench_training_1b 180 60 -- do_bench_training "$BIG" "$BT_STEPS" "$WORK/bench_training_1b.json"

# f. the 8B shape (random, bf16): loads and scores N rows with no OOM; tokens/s and MFU
step model_8b 150 100 -- "$PY" bench/gpu_model.py "$HUGESZ:$HUGE" --device "$DEVICE" --dtype bfloat16
wb wb_8b 150 60 "$HUGE" "$WORK/wb_8b.json" --template "$TPL" --dtype bfloat16
mkdir -p "$WORK/8b_config"; cp "$HUGE/config.json" "$WORK/8b_config/" 2>/dev/null; rm -rf "$HUGE"

# g. the multi-token phrase case and the 8-shot case, both tools, bf16
step prep_phrases 40 30 -- "$PY" bench/gpu_helpers.py prep-lmeval --template "$TPL_PH" --data "$DATA" --limit "$N" --shots 0 --seed 1 --work "$WORK/task_phrases"
wb wb_1b_phrases 90 60 "$BIG" "$WORK/wb_1b_phrases.json" --template "$TPL_PH" --dtype bfloat16
lmeval lmeval_1b_phrases 150 50 "$WORK/task_phrases" bfloat16
step prep_8shot 40 30 -- "$PY" bench/gpu_helpers.py prep-lmeval --template "$TPL" --data "$DATA" --limit "$N" --shots 8 --seed 1 --work "$WORK/task_8shot"
wb wb_1b_8shot 100 60 "$BIG" "$WORK/wb_1b_8shot.json" --template "$TPL" --shots 8 --dtype bfloat16
lmeval lmeval_1b_8shot 150 50 "$WORK/task_8shot" bfloat16

# h. while time is left: scoring through transformers, and workbench train (its memory figures)
wb wb_1b_tf 100 40 "$BIG" "$WORK/wb_1b_tf.json" --template "$TPL" --dtype bfloat16 --no-native
step train_1b 150 60 -- "$PY" -m workbench.cli train --model "$BIG" --device "$DEVICE" --data "$DATA" --template "$TPL" \
  --steps "$TRAIN_STEPS" --k 16 --batch-size 8 --eval-every 0 --dev-limit 16 --test-limit 16 --max-length 128 --seed 1 \
  --out "$WORK/train_1b" --no-registry

# i. the comparisons (again, with everything that ran), summary, table
DEADLINE=$(( SECONDS + 90 ))
compare compare_single "$TPL" 0 "$WORK/task_single" lmeval_1b lmeval_1b_fp32 "$WORK/wb_1b.json" "$WORK/wb_1b_tf.json" "$WORK/wb_1b_fp32.json"
compare compare_phrases "$TPL_PH" 0 "$WORK/task_phrases" lmeval_1b_phrases none "$WORK/wb_1b_phrases.json" none none
compare compare_8shot "$TPL" 8 "$WORK/task_8shot" lmeval_1b_8shot none "$WORK/wb_1b_8shot.json" none none
RUNS="{\"wb_1b_cold\": [\"$WORK/wb_1b_cold.json\", \"$BIG\"], \"wb_1b\": [\"$WORK/wb_1b.json\", \"$BIG\"], \"wb_1b_fp32\": [\"$WORK/wb_1b_fp32.json\", \"$BIG\"], \"wb_8b\": [\"$WORK/wb_8b.json\", \"$WORK/8b_config\"], \"wb_1b_phrases\": [\"$WORK/wb_1b_phrases.json\", \"$BIG\"], \"wb_1b_8shot\": [\"$WORK/wb_1b_8shot.json\", \"$BIG\"], \"wb_1b_tf\": [\"$WORK/wb_1b_tf.json\", \"$BIG\"]}"
PAIRS='{"single_bf16": ["wb_1b", "lmeval_1b"], "single_bf16_cold": ["wb_1b_cold", "lmeval_1b"], "single_fp32": ["wb_1b_fp32", "lmeval_1b_fp32"], "phrases_bf16": ["wb_1b_phrases", "lmeval_1b_phrases"], "8shot_bf16": ["wb_1b_8shot", "lmeval_1b_8shot"]}'
SETTINGS="{\"device\": \"$DEVICE\", \"size\": \"$SIZE\", \"rows\": $N, \"budget_s\": $BUDGET_S, \"command\": \"OUT=\$OUT bash bench/gpu_check.sh\"}"
cp "$WORK"/compare_single.json "$OUT/" 2>/dev/null
cp -r "$WORKBENCH_HOME/fastpath" "$WORK/fastpath_verdicts" 2>/dev/null
timeout 60 "$PY" bench/gpu_helpers.py summary --work "$WORK" --wbhome "$WORKBENCH_HOME" --out "$OUT/summary.json" \
  --table "$OUT/table.md" --wb-runs "$RUNS" --pairs "$PAIRS" --settings "$SETTINGS"
tar -czf "$OUT/extras.tar.gz" -C "$WORK" --exclude=./models --exclude=./hf --exclude=./c4c --exclude=./wbhome \
  --exclude='adapter*' --exclude='*.safetensors' --exclude='checkpoint*' --exclude='*.jsonl' . 2>/dev/null
ls -la "$OUT"
echo "total wall: ${SECONDS}s"
exec 1>&- 2>&-
wait "$TEE_PID" 2>/dev/null
