"""A `pixelkiln serve` child process with tokens (and TLS when asked), for the engine clients'
end-to-end tests (C#, GDScript, Blender): the certificates are made in the test
(tests/certs.py), the token file is written with mode 0600."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixelkiln import Client

from .certs import Pki, make_pki
from .conftest import free_port, home_dir

GENERATE_TOKEN = "pk_artist-generate-token-0123456789abcd"
ADMIN_TOKEN = "pk_lead-admin-token-0123456789abcdefgh"


@dataclass(frozen=True)
class SecureDaemon:
    grpc_address: str
    ws_url: str  # ws:// or wss://
    pki: Pki | None  # None: tokens only, plaintext
    token_file: Path


def write_token_file(folder: Path) -> Path:
    path = folder / "tokens"
    path.write_text(f"artist generate {GENERATE_TOKEN}\nlead admin {ADMIN_TOKEN}\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def secure_served(folder: Path, tls: bool, *more: str) -> Iterator[SecureDaemon]:
    """tiny-random behind --token-file, with --tls-cert/--tls-key when ``tls``; ``more``:
    further ``pixelkiln serve`` arguments."""
    pki = make_pki(folder) if tls else None
    token_file = write_token_file(folder)
    port, ws_port = free_port(), free_port()
    extra: list[str] = ["--token-file", str(token_file), *more]
    if pki is not None:
        extra += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    for name in ("PIXELKILN_TOKEN", "PIXELKILN_TLS_CA"):
        env.pop(name, None)
    log = (folder / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelkiln.cli", "serve", "--port", str(port)]
        + ["--ws-port", str(ws_port), "--model", "tiny-random", *extra],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{port}"
    scheme = "wss" if tls else "ws"
    try:
        ca = None if pki is None else pki.ca
        with Client(address, timeout=5, token=GENERATE_TOKEN, root_certificates=ca) as client:
            try:
                client.wait_ready(timeout=120)
            except Exception:
                proc.kill()
                proc.wait()
                print((folder / "daemon.log").read_text(errors="replace"))
                raise
        yield SecureDaemon(address, f"{scheme}://127.0.0.1:{ws_port}/v1", pki, token_file)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
