"""A loopback HTTP server for the template, the page and the pack.

Godot's web build needs cross-origin isolation (SharedArrayBuffer), so every answer carries
``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``.
Only the files it is given are served, from memory; it binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from . import template

PACK_NAME = "test.pck"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript",
    ".wasm": "application/wasm",
    ".pck": "application/octet-stream",
}

# The page starts the engine with the pack and sends Godot's print()/printerr() to the console,
# where the runner reads them; onExit reports quit(code).
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>PixelKiln web test</title></head>
<body><canvas id="canvas" width="64" height="64"></canvas>
<script src="index.js"></script>
<script>
const engine = new Engine(%(config)s);
engine.startGame({
  onPrint: (...parts) => console.log(parts.join(" ")),
  onPrintError: (...parts) => console.error(parts.join(" ")),
  onExit: (code) => console.log("PIXELKILN_EXIT " + code),
}).catch((err) => console.error("PIXELKILN_START_FAILED " + err));
</script></body></html>
"""


def page(sizes: Mapping[str, int]) -> bytes:
    config = {
        "executable": "index",
        "mainPack": PACK_NAME,
        "args": [],
        "canvasResizePolicy": 0,
        "focusCanvas": False,
        "ensureCrossOriginIsolationHeaders": False,
        "gdextensionLibs": [],
        "fileSizes": dict(sizes),
    }
    return (PAGE % {"config": json.dumps(config)}).encode("utf-8")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = self.server.files.get(self.path.split("?", 1)[0].lstrip("/") or "index.html")
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        suffix = Path(self.path.split("?", 1)[0]).suffix or ".html"
        self.send_header("Content-Type", CONTENT_TYPES.get(suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]


class PageServer:
    """Serves the template, the page and ``pack`` on 127.0.0.1 (a context manager)."""

    def __init__(self, pack: bytes, template_dir: Path | None = None) -> None:
        folder = template_dir or template.template_dir()
        served = {name: (folder / name).read_bytes() for name in template.FILES}
        served[PACK_NAME] = pack
        served["index.html"] = page({name: len(data) for name, data in served.items()})
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.files = served
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/index.html"

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
