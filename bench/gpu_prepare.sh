#!/usr/bin/env bash
# Recreate .gpu/ (wheels + data) that bench/gpu_check.sh needs on the bare GPU machine, which
# reaches no registry and has no lm-eval, datasets or the BBC data. Run here, once, with network
# to PyPI:
#
#     bash bench/gpu_prepare.sh                    # writes ./.gpu (ignored via .git/info/exclude)
#     GPU_DIR=/work/main/.gpu bash bench/gpu_prepare.sh
#
# .gpu/whl   lm-eval 0.4.13 and the part of its dependency closure the GPU image lacks, for
#            CPython 3.12 (all pure-Python wheels: py3-none-any, or py312-none-any for multiprocess)
# .gpu/data  bbc1000.jsonl (1,000 BBC rows: load_dataset("bbc", limit=1000), every class),
#            the templates bbc_headline_topic.yaml / bbc_headline_phrase_topic.yaml, and the
#            SmolLM2 tokenizer files (tokenizer.json, tokenizer_config.json, chat_template.jinja)
# The whole folder must stay well under the 64 MiB a device call carries (tree included).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPU_DIR="${GPU_DIR:-$ROOT/.gpu}"
PY="${PY:-python3}"
W="$GPU_DIR/whl"
D="$GPU_DIR/data"
mkdir -p "$W" "$D"

# keep .gpu out of git in the checkout that holds it (it travels as a carried path instead)
EXCL="$(cd "$GPU_DIR/.." && git rev-parse --git-path info/exclude 2>/dev/null || true)"
if [ -n "$EXCL" ] && ! grep -qx '/.gpu/' "$EXCL" 2>/dev/null; then echo '/.gpu/' >> "$EXCL"; fi

# One version of each: two versions of one name stop `pip install --no-deps` on the device.
# Versions fit the image (transformers 5.17, huggingface-hub 1.33): datasets 5.0.1 wants
# huggingface-hub >= 1.31 and dill < 0.4.2, multiprocess < 0.70.20; pytablewriter wants typepy < 2,
# mbstrdecoder wants chardet < 6.
PINS=(lm_eval==0.4.13 datasets==5.0.1 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19
      pytablewriter==1.2.1 DataProperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1 tabledata==1.3.5
      tcolorpy==0.1.7 typepy==1.3.5 chardet==5.2.0 more-itertools==11.2.1 nltk==3.10.4 pytz==2026.6)
# no wheels on PyPI: built here (pure Python)
BUILD=(rouge-score==0.1.2 sqlitedict==2.1.0 word2number==1.1)
PLAT=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
rm -f "$W"/*.whl
"$PY" -m pip download -q --no-deps --only-binary=:all: "${PLAT[@]}" -d "$W" "${PINS[@]}"
for spec in "${BUILD[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: "${PLAT[@]}" -d "$W" "$spec" 2>/dev/null \
    || "$PY" -m pip wheel -q --no-deps -w "$W" "$spec"
done
# every wheel must be pure Python (or py312) so `pip --target` on the image's CPython 3.12 takes it
for f in "$W"/*.whl; do
  case "$(basename "$f")" in
    *-py3-none-any.whl|*-py2.py3-none-any.whl|*-py312-none-any.whl) ;;
    *) echo "not a pure-Python / py312 wheel: $f" >&2; exit 1 ;;
  esac
done

# data: 1,000 BBC rows, the two templates, the SmolLM2 tokenizer (small; no weights travel)
PYTHONPATH="$ROOT" "$PY" - "$D" <<'EOF'
import json, shutil, sys
from pathlib import Path
from workbench.storage.data_load import load_dataset
from workbench.engine.models import resolve_model

d = Path(sys.argv[1])
ds = load_dataset("bbc", limit=1000)
with open(d / "bbc1000.jsonl", "w") as f:
    for r in ds.df.to_dict("records"):
        f.write(json.dumps({k: r[k] for k in ("id", "title", "text", "label")}) + "\n")
tok = d / "tokenizer"
tok.mkdir(exist_ok=True)
src = Path(resolve_model("default").path)
for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
    if (src / name).exists():
        shutil.copy(src / name, tok / name)
print(f"{len(ds.df)} rows, tokenizer from {src}")
EOF
for t in bbc_headline_topic bbc_headline_phrase_topic; do
  cp "$ROOT/templates_library/$t.yaml" "$D/$t.yaml"
done
du -sh "$W" "$D" "$GPU_DIR"
