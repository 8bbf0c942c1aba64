#!/usr/bin/env bash
# Create .venv-bpy: Blender as a Python module (bpy from PyPI) for the Blender add-on tests,
# with the add-on's runtime dependencies at the very versions bundled as its wheels.
#
#   bash tools/setup_bpy_venv.sh        # idempotent: a second run checks and returns in ~2 s
#
# bpy 4.2 LTS (the oldest Blender the extension supports) needs CPython 3.11 exactly and
# numpy < 2. Pillow is left out on purpose: Blender does not ship it, so neither may the
# add-on need it, and the tests would not notice if it crept in.
# PIXELKILN_BPY_VENV overrides the folder; PYTHON311 the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PIXELKILN_BPY_VENV:-.venv-bpy}"
BPY_VERSION="4.2.23"

PY="${PYTHON311:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      PY="$candidate"
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "setup_bpy_venv: bpy $BPY_VERSION needs Python 3.11; none found (set PYTHON311)" >&2
  exit 1
fi

mapfile -t PINS < <("$PY" tools/build_blender_wheels.py --print-requirements)
WANT="bpy==$BPY_VERSION numpy<2 ${PINS[*]}"
STAMP="$VENV/.pixelkiln-requirements"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] &&
  "$VENV/bin/python" -c 'import bpy, grpc, grpc_health, google.protobuf' >/dev/null 2>&1; then
  echo "setup_bpy_venv: $VENV is up to date ($WANT)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
"$VENV/bin/python" -m pip install -q "bpy==$BPY_VERSION" "numpy<2" "${PINS[@]}"
"$VENV/bin/python" -c 'import bpy; print("setup_bpy_venv: bpy", bpy.app.version_string)'
echo "$WANT" >"$STAMP"
