#!/usr/bin/env bash
# The turbo-model GPU benchmark on a lent GPU machine, inside one device command (<= 10 min).
#
#   bash benchmarks/gpu_device_run.sh --fetch-wheels   # here, with PyPI: the wheels into .whl/
#   bash benchmarks/gpu_device_run.sh                  # there: install, rows, table under $OUT
#   bash benchmarks/gpu_device_run.sh --dry-run        # any CPU: the same flow, --cpu-smoke rows
#
# The device has no network and its own Python with a CUDA torch: the packages the daemon needs
# beyond that image travel as wheels in .whl/ (the versions of constraints.txt; `carry: [".whl"]`)
# and are installed with --no-deps into a target folder. On a CUDA machine with network, set
# PIXELKILN_PIP_INSTALL=1 to install the cuda extra with the constraints instead.
#
# Rows run most important first, each group of variants in its own process with its own time
# cap (timeout -k); every measured row is appended to $OUT/rows.jsonl at once, so a cap, the
# overall budget (BUDGET_S, default 480 s) or the device's limit still leaves the numbers
# measured so far. The table is rewritten after each group ($OUT/table.txt, $OUT/gpu_turbo.json).
#
# Environment: OUT (default benchmarks/results/gpu_device), BUDGET_S, PYTHON (default python3;
# .venv/bin/python with --dry-run), ROWS ("model:variant,variant:cap_s ..." to run other rows,
# e.g. the ones a first call did not reach), MIN_ROW_S (a group starts only with at least this
# much budget left, default 30), GPU_TURBO (the row script; tests use a stand-in).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# model:variants:cap_s, most important first (issue #20's goals: SD-Turbo live <= 10 ms GPU and
# <= 25 ms client to client; SDXL-Turbo 1 step <= 35 ms; FLUX.1-schnell <= 700 ms bf16 compiled,
# <= 450 ms fp8; Z-Image-Turbo <= 1 s). fp8 quantizes in place: own process after compile.
DEFAULT_ROWS="sd-turbo:eager,compile:170 sdxl-turbo:eager:110 flux.1-schnell:eager,compile:300
flux.1-schnell:fp8:240 z-image-turbo:eager:170 sdxl-turbo:compile,fp8:240 sd-turbo:fp8,onnx:200
z-image-turbo:compile,fp8:300"
# What the daemon needs beyond the device image (which has torch, transformers, accelerate,
# peft, numpy, pillow, safetensors, msgpack, prometheus-client; see the device's KINDS.md).
# onnxruntime-gpu (256 MB for cp312) does not fit the 64 MiB that travels with a call.
WHEELS="diffusers grpcio grpcio-health-checking grpcio-reflection protobuf websockets torchao"

mode=run
case "${1:-}" in
  --fetch-wheels) mode=fetch ;;
  --dry-run) mode=dry ;;
  "") ;;
  *) echo "usage: $0 [--fetch-wheels | --dry-run]" >&2; exit 2 ;;
esac

if [ "$mode" = fetch ]; then
  # cp312 manylinux wheels at the constraints' versions, no dependencies (named above).
  PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  mkdir -p .whl
  platforms=""
  for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
           manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms="$platforms --platform $p"
  done
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $platforms -c constraints.txt -d .whl $WHEELS || exit 1
  du -ch .whl/*.whl | tail -1
  exit 0
fi

OUT=${OUT:-$ROOT/benchmarks/results/gpu_device}
BUDGET_S=${BUDGET_S:-480}
ROWS=${ROWS:-$DEFAULT_ROWS}
MIN_ROW_S=${MIN_ROW_S:-30}
GPU_TURBO=${GPU_TURBO:-benchmarks/gpu_turbo.py}
smoke=()
if [ "$mode" = dry ]; then
  smoke=(--cpu-smoke)
  PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
else
  PY=${PYTHON:-python3}
fi
mkdir -p "$OUT"
LOG=$OUT/log.txt
: >"$OUT/rows.jsonl"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

extra_path=""
if [ "$mode" = run ] && compgen -G ".whl/*.whl" >/dev/null; then
  echo "== installing $(ls .whl/*.whl | wc -l) carried wheels into /tmp/pixelkiln-site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/pixelkiln-site .whl/*.whl || exit 1
  extra_path=/tmp/pixelkiln-site
elif [ "$mode" = run ] && [ "${PIXELKILN_PIP_INSTALL:-0}" = 1 ]; then
  echo "== pip install -c constraints.txt -e .[server,cuda]"
  "$PY" -m pip install -q -c constraints.txt -e ".[server,cuda]" || exit 1
fi
export PYTHONPATH="$ROOT/server:$ROOT/clients/python${extra_path:+:$extra_path}${PYTHONPATH:+:$PYTHONPATH}"

echo "== preflight"
"$PY" - <<'EOF' || { echo "preflight failed: the daemon's packages are missing (see above)"; exit 3; }
import importlib, importlib.util
import torch
for name in ("diffusers", "transformers", "grpc", "google.protobuf", "websockets"):
    print(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
import pixelkiln_server.app  # noqa: F401  the daemon and its generated stubs import
for name in ("torchao", "onnxruntime"):
    found = importlib.util.find_spec(name) is not None
    print(f"{name} {importlib.import_module(name).__version__ if found else 'missing'}")
if importlib.util.find_spec("onnxruntime"):
    import onnxruntime
    print("onnxruntime providers", onnxruntime.get_available_providers())
cuda = torch.cuda.is_available()
print(f"torch {torch.__version__}, cuda {cuda}", torch.cuda.get_device_name() if cuda else "")
EOF

skip_row() {  # model variants reason: one JSON line per variant
  local v
  for v in ${2//,/ }; do
    printf '{"model": "%s", "variant": "%s", "stage": "-", "ms": null, "skipped": "%s"}\n' \
      "$1" "$v" "$3" >>"$OUT/rows.jsonl"
  done
}
table() {
  "$PY" benchmarks/gpu_turbo.py --table "$OUT/rows.jsonl" --out "$OUT/gpu_turbo.json" \
    >"$OUT/table.txt.new" 2>&1 && mv "$OUT/table.txt.new" "$OUT/table.txt"
}

start=$SECONDS
for row in $ROWS; do
  IFS=: read -r model variants cap <<<"$row"
  left=$((BUDGET_S - (SECONDS - start)))
  if [ "$left" -lt "$MIN_ROW_S" ]; then
    echo "== $model $variants: skipped, budget spent (${BUDGET_S} s)"
    skip_row "$model" "$variants" "not reached: the run's budget of ${BUDGET_S} s was spent"
    continue
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "== $model $variants (cap ${cap} s, ${left} s of the budget left)"
  # gpu_turbo's own budget stops optional variants early, before the hard cap kills the row.
  timeout -k 10 "$cap" "$PY" "$GPU_TURBO" "${smoke[@]}" --models "$model" \
    --variants "$variants" --budget-s $((cap > 60 ? cap - 30 : cap / 2)) \
    --rows-jsonl "$OUT/rows.jsonl" --out "/tmp/gpu_turbo_row.json"
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "== $model $variants: killed at its cap of ${cap} s"
    skip_row "$model" "$variants" "killed at the cap of ${cap} s (stages listed above it were measured)"
  elif [ "$rc" -ne 0 ]; then
    skip_row "$model" "$variants" "exit status $rc (see log.txt)"
  fi
  table
done
table
echo "== done in $((SECONDS - start)) s"
cat "$OUT/table.txt"
