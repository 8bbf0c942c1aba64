"""What tokens and TLS cost: the same calls to a plain daemon and to one with tokens and TLS.

    python benchmarks/security.py [--calls N] [--generations N]

Two `pixelkiln serve --model tiny-random` child processes, one plain, one with a token file
and TLS (a certificate made here). Arms are interleaved in blocks (noisy machines); prints the
medians and the ratio secure/plain for a Status call and a 64x64 1-step generation. Measured,
never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pixelkiln import Client  # noqa: E402
from tests.certs import make_pki  # noqa: E402
from tests.conftest import free_port, home_dir  # noqa: E402

TOKEN = "pk_benchmark-token-0123456789abcdef"


@contextlib.contextmanager
def daemon(extra: list[str], probe: dict[str, object]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PIXELKILN_HOME": str(home_dir()), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pixelkiln.cli", "serve", "--port", str(port), "--ws-port"]
    cmd += ["-1", "--model", "tiny-random", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        with Client(address, timeout=5, **probe) as c:  # type: ignore[arg-type]
            c.wait_ready(timeout=120)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        tokens = Path(tmp) / "tokens"
        tokens.write_text(f"bench admin {TOKEN}\n")
        tokens.chmod(0o600)  # the daemon's rule; on Windows the folder's access list applies
        secure_flags = ["--token-file", str(tokens), "--tls-cert", str(pki.server_cert)]
        secure_flags += ["--tls-key", str(pki.server_key)]
        secure_kw: dict[str, object] = {"token": TOKEN, "root_certificates": pki.ca}
        with (
            daemon([], {}) as plain_addr,
            daemon(secure_flags, {"root_certificates": pki.ca}) as secure_addr,
            Client(plain_addr, timeout=60) as plain,
            Client(secure_addr, timeout=60, **secure_kw) as secure,  # type: ignore[arg-type]
        ):
            results: dict[str, dict[str, list[float]]] = {}
            for c in (plain, secure):  # warm both channels
                c.status()
                c.generate("warm", size=64, steps=1, seed=1)
            for _ in range(args.blocks):
                for name, c in (("plain", plain), ("tokens+TLS", secure)):
                    arm = results.setdefault(name, {"status": [], "generate": []})
                    arm["status"] += timed(c.status, args.calls // args.blocks)
                    arm["generate"] += timed(
                        lambda c=c: c.generate("moss", size=64, steps=1, seed=2),
                        args.generations // args.blocks,
                    )
    print(f"{'call':<28}{'plain p50 ms':>14}{'tokens+TLS p50 ms':>20}{'ratio':>8}")
    for what, label in (("status", "Status"), ("generate", "generate 64x64 1 step")):
        p = statistics.median(results["plain"][what])
        s = statistics.median(results["tokens+TLS"][what])
        print(f"{label:<28}{p:>14.2f}{s:>20.2f}{s / p:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
