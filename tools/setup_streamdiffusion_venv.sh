#!/usr/bin/env bash
# Create .cache/venv-streamdiffusion: StreamDiffusion 0.1.1 from PyPI, the peer that
# benchmarks/peer_streamdiffusion.py measures PixelKiln's live mode against (issue #19).
#
#   bash tools/setup_streamdiffusion_venv.sh    # idempotent: a second run checks and returns
#
# StreamDiffusion 0.1.1 pins diffusers 0.24.0, which imports huggingface_hub.cached_download
# (removed in huggingface_hub 0.26), so the hub and transformers are held at the last releases
# that still go with it. torch is the same release as the project's (2.13.0, the local CPU
# build where one is offered). Nothing here touches the project's own .venv.
# PIXELKILN_SD_VENV overrides the folder; PYTHON the interpreter (3.10+).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PIXELKILN_SD_VENV:-.cache/venv-streamdiffusion}"
PY="${PYTHON:-python3}"
WANT=(
  "streamdiffusion==0.1.1"
  "diffusers==0.24.0"
  "huggingface_hub==0.25.2"
  "transformers==4.45.2"
  "tokenizers<0.21"
  "accelerate<1.1"
  "numpy<2"
  "torch==2.13.0"
  "safetensors"
  "pillow"
)
STAMP="$VENV/.pixelkiln-requirements"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${WANT[*]}" ] &&
  "$VENV/bin/python" -c 'import streamdiffusion, diffusers, torch' >/dev/null 2>&1; then
  echo "setup_streamdiffusion_venv: $VENV is up to date"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
"$VENV/bin/python" -m pip install -q "${WANT[@]}"
"$VENV/bin/python" - <<'EOF'
import diffusers, streamdiffusion, torch, transformers
print("setup_streamdiffusion_venv: streamdiffusion 0.1.1, diffusers", diffusers.__version__,
      "transformers", transformers.__version__, "torch", torch.__version__)
EOF
echo "${WANT[*]}" >"$STAMP"
