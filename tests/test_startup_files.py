"""Files named on ``pixelkiln serve``'s command line (--token-file, --tls-cert, --tls-key,
--tls-client-ca) are read only when they are small regular files: a device, a FIFO or a
folder is refused at once in one line naming the flag, never read until memory runs out or
waited on for ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelkiln_server.auth import (
    MAX_FILE_BYTES,
    TokenFileError,
    TokenStore,
    UnreadableFile,
    read_small_file,
)
from pixelkiln_server.security import SecurityConfigError, preflight

from .certs import Pki, make_pki
from .conftest import make_config
from .test_security import ALICE

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("--token-file", "--tls-cert", "--tls-key", "--tls-client-ca")
# Seconds: `pixelkiln serve` refuses a bad file in well under one; a reader that waits on a
# FIFO or reads /dev/zero never finishes.
REFUSE_WITHIN = 30
# Bytes of address space for that subprocess: a reader of /dev/zero fails fast, not the machine.
MEMORY_LIMIT = 3 << 30


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _files(flag: str, bad: Path | str, pki: Pki) -> dict[str, Path | str]:
    """The security files for a start where ``flag`` names ``bad`` and the others are fine."""
    files: dict[str, Path | str] = {}
    if flag != "--token-file":
        files = {"--tls-cert": pki.server_cert, "--tls-key": pki.server_key}
    if flag == "--tls-client-ca":
        files["--tls-client-ca"] = pki.ca
    files[flag] = bad
    return files


def _config_of(files: dict[str, Path | str]) -> dict[str, object]:
    return {flag[2:].replace("-", "_"): Path(path) for flag, path in files.items()}


# The CLI under an address-space cap set in the child itself, after exec: a ``preexec_fn`` runs
# Python between fork and exec in a process whose gRPC threads are busy (the test worker's),
# and the child then aborted in gRPC's fork handlers (seen in CI: SIGABRT, "epoll_wait error").
CAPPED_CLI = (
    "import resource, runpy, sys\n"
    "if sys.platform.startswith('linux'):\n"
    f"    resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
    "sys.argv = ['pixelkiln', *sys.argv[1:]]\n"
    "runpy.run_module('pixelkiln.cli', run_name='__main__')\n"
)


@pytest.mark.skipif(sys.platform == "win32", reason="/dev/zero and FIFOs are POSIX")
@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_serve_refuses_a_device_or_a_fifo_at_once(
    flag: str, kind: str, tmp_path: Path, pki: Pki
) -> None:
    if kind == "fifo":
        bad = tmp_path / "pipe"
        os.mkfifo(bad)
    else:
        bad = Path("/dev/zero")
    args = [arg for pair in _files(flag, bad, pki).items() for arg in map(str, pair)]
    proc = subprocess.run(
        [sys.executable, "-c", CAPPED_CLI, "serve", "--port", "0", "--ws-port", "-1", *args],
        capture_output=True,
        text=True,
        timeout=REFUSE_WITHIN,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"pixelkiln serve: error: {flag}: {bad} is not a regular file\n"


@pytest.mark.parametrize("flag", FLAGS)
def test_a_folder_or_an_oversize_file_is_refused_naming_the_flag(
    flag: str, tmp_path: Path, pki: Pki
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(SecurityConfigError) as info:
        preflight(make_config(**_config_of(_files(flag, folder, pki))))
    if sys.platform == "win32":  # a folder cannot be opened at all there
        assert str(info.value).startswith(f"{flag}: cannot read {folder} (")
    else:
        assert str(info.value) == f"{flag}: {folder} is not a regular file"

    big = tmp_path / "big"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(SecurityConfigError) as info:
        preflight(make_config(**_config_of(_files(flag, big, pki))))
    assert str(info.value) == f"{flag}: {big} is larger than 1 MiB"


def test_the_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_small_file(path, limit=10) == b"x" * 10
    with pytest.raises(UnreadableFile, match="is larger than"):
        read_small_file(path, limit=9)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"alice generate {ALICE}\n" + "#" * (MAX_FILE_BYTES - 100))
    assert len(TokenStore.load(tokens)) == 1


def test_a_token_file_that_is_not_utf8_is_refused_in_words(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_bytes(b"alice generate pk_\xff\xfe0123456789abcdef\n")
    with pytest.raises(TokenFileError, match=r"tokens: not UTF-8 text \(byte 18\)$"):
        TokenStore.load(path)
    with pytest.raises(SecurityConfigError, match=r"^--token-file: .*not UTF-8 text"):
        preflight(make_config(token_file=path))
