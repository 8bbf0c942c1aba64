#!/usr/bin/env bash
# Create .venv-bpy: Blender as a Python module (bpy from PyPI) for the Blender add-on tests,
# with the add-on's runtime dependencies at the very versions bundled as its wheels.
#
#   bash tools/setup_bpy_venv.sh        # idempotent: a second run checks and returns in ~2 s
#
# bpy 4.2 LTS (the oldest Blender the extension supports) needs CPython 3.11 exactly and
# numpy < 2. Pillow is left out on purpose: Blender does not ship it, so neither may the
# add-on need it, and the tests would not notice if it crept in.
#
# PIXELKILN_BPY_VENV overrides the folder, PIXELKILN_BPY_VERSION the bpy release (for a
# check on a newer Blender line: bpy 4.2 to 5.0 are built for Python 3.11, 5.1 and later
# for 3.13), PYTHON311 / PYTHON313 the interpreter. Example, Blender 5.3 on Python 3.13:
#
#   PIXELKILN_BPY_VENV=/tmp/bpy53 PIXELKILN_BPY_VERSION=5.3.0 bash tools/setup_bpy_venv.sh
#   PIXELKILN_BPY_VENV=/tmp/bpy53 .venv/bin/python -m pytest tests/blender
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PIXELKILN_BPY_VENV:-.venv-bpy}"
BPY_VERSION="${PIXELKILN_BPY_VERSION:-4.2.23}"

case "$BPY_VERSION" in
  4.* | 5.0.*)
    PY_WANT="3.11" PY="${PYTHON311:-}" NUMPY="numpy<2" ;;
  *)
    PY_WANT="3.13" PY="${PYTHON313:-}" NUMPY="numpy" ;;
esac
if [ -z "$PY" ]; then
  for candidate in "python$PY_WANT" python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$PY_WANT'.split('.'))))" 2>/dev/null; then
      PY="$candidate"
      break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "setup_bpy_venv: bpy $BPY_VERSION needs Python $PY_WANT; none found (set PYTHON${PY_WANT/./})" >&2
  exit 1
fi

mapfile -t PINS < <("$PY" tools/build_blender_wheels.py --print-requirements)
WANT="bpy==$BPY_VERSION $NUMPY ${PINS[*]}"
STAMP="$VENV/.pixelkiln-requirements"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] &&
  "$VENV/bin/python" -c 'import bpy, grpc, grpc_health, google.protobuf' >/dev/null 2>&1; then
  echo "setup_bpy_venv: $VENV is up to date ($WANT)"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
"$VENV/bin/python" -m pip install -q "bpy==$BPY_VERSION" "$NUMPY" "${PINS[@]}"
"$VENV/bin/python" -c 'import bpy; print("setup_bpy_venv: bpy", bpy.app.version_string)'
echo "$WANT" >"$STAMP"
