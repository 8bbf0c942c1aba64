"""Run as ``python tools/godot_web ...``, or ``python -m godot_web ...`` with tools/ on the path."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from godot_web.cli import main  # noqa: E402

sys.exit(main())
