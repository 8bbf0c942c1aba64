"""Putting a finished file or folder in place, as Windows allows.

On Windows a rename fails with PermissionError while another process holds the source or the
target open for a moment: an antivirus scanning a new file, the search indexer, a second
daemon reading the cached measurement. It succeeds a moment later, so there it is retried for
up to about a second; elsewhere the first error is the answer. (Without this, one scan during
the first start's ONNX export made the daemon serve torch for the whole run.)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

RETRIES = 10
WAIT_S = 0.1


def replace(src: str | Path, dst: str | Path, platform: str = sys.platform) -> None:
    """``os.replace(src, dst)``, retried on Windows while it is refused."""
    for attempt in range(RETRIES):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if platform != "win32" or attempt == RETRIES - 1:
                raise
            time.sleep(WAIT_S)
