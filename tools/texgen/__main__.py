"""Run as ``python tools/texgen ...`` or ``python -m texgen ...`` (with tools/ on the path)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from texgen.cli import main  # noqa: E402

sys.exit(main())
