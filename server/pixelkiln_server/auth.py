"""Tokens: who may use the daemon, and for what.

A token file holds one token per line: ``NAME SCOPE TOKEN`` (``#`` starts a comment). The
scope is ``generate`` (generate, live, cancel its own jobs, list models, read status) or
``admin`` (also load and unload models). A token's NAME is the client's identity: jobs,
fairness and cancel are per name. ``pixelkiln token create NAME`` appends one.

Nothing here imports grpc: the transports read the ``authorization`` header and ask
:meth:`TokenStore.authenticate`.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import re
import secrets
import stat
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .errors import Unauthenticated

AUTH_HEADER = "authorization"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
TOKEN_PREFIX = "pk_"
# The most a token file or a PEM file (--tls-cert, --tls-key, --tls-client-ca) may hold; real
# ones are a few kilobytes, and a bigger "file" (/dev/zero) would stall start-up for ever.
MAX_FILE_BYTES = 1 << 20
# How often a daemon looks at its token file for changes (at most once per this many seconds,
# when a caller authenticates): a token added or revoked takes effect without a restart.
RELOAD_CHECK_S = 1.0

log = logging.getLogger(__name__)


class Scope(str, Enum):
    GENERATE = "generate"
    ADMIN = "admin"


@dataclass(frozen=True)
class Token:
    name: str
    scope: Scope
    secret: str

    def __repr__(self) -> str:  # never log a secret
        return f"Token(name={self.name!r}, scope={self.scope.value})"


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the file and the line."""


class UnreadableFile(ValueError):
    """A file given on the command line that is not a small regular file; the message names
    the path."""


def read_small_file(path: Path | str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Raises OSError when it cannot be
    opened, UnreadableFile for anything else (a FIFO, a device, a folder, a bigger file)."""
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; regular files ignore it.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"{path} is not a regular file")
        too_big = UnreadableFile(f"{path} is larger than {limit / (1 << 20):g} MiB")
        if info.st_size > limit:
            raise too_big
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)  # one more: a file that grew since fstat is refused too
        if len(data) > limit:
            raise too_big
        return data
    finally:
        os.close(fd)


def parse_tokens(text: str, source: str) -> list[Token]:
    tokens: list[Token] = []
    names: set[str] = set()
    secrets_seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{number}"
        parts = line.split()
        if len(parts) != 3:
            raise TokenFileError(f"{where}: want 'NAME SCOPE TOKEN', got {len(parts)} fields")
        name, scope, secret = parts
        if not NAME_PATTERN.fullmatch(name):
            raise TokenFileError(
                f"{where}: name {name!r} must be 1-64 letters, digits or _.@- "
                "(starting with a letter or digit)"
            )
        if scope not in {s.value for s in Scope}:
            raise TokenFileError(f"{where}: scope {scope!r} must be 'generate' or 'admin'")
        if len(secret) < 16:
            raise TokenFileError(f"{where}: the token is shorter than 16 characters")
        if name in names:
            raise TokenFileError(f"{where}: the name {name!r} is used twice")
        if secret in secrets_seen:
            raise TokenFileError(f"{where}: the same token is given twice")
        names.add(name)
        secrets_seen.add(secret)
        tokens.append(Token(name, Scope(scope), secret))
    if not tokens:
        raise TokenFileError(f"{source}: no tokens (create one: pixelkiln token create NAME)")
    return tokens


def _read_token_file(path: Path) -> str:
    try:
        data = read_small_file(path)
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the token file ({exc.strerror})") from None
    except UnreadableFile as exc:
        raise TokenFileError(str(exc)) from None
    try:
        # utf-8-sig: Notepad's "UTF-8 with BOM" starts with one (it read as part of a name).
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")  # PowerShell 5.1's > and Out-File
        hint = "; it is UTF-16: save it as UTF-8" if utf16 else ""
        raise TokenFileError(f"{path}: not UTF-8 text (byte {exc.start}){hint}") from None


def loose_permissions(path: Path) -> bool:
    """True when others than the owner may read the file (POSIX only)."""
    if sys.platform == "win32":
        return False
    return bool(path.stat().st_mode & 0o077)


class TokenStore:
    """The tokens a daemon accepts. Comparison is constant-time against every token.

    Loaded from a file, it looks at the file again (size, time, inode) at most every
    RELOAD_CHECK_S seconds when a caller authenticates, and re-reads it when it changed: a
    token added with ``pixelkiln token create`` or a line deleted takes effect for new calls
    without a restart (streams already open keep going). A changed file that cannot be used
    (removed, half-written, a bad line) fails closed: every token is refused, with a message
    that says so, until the file is fixed; the log names the fault."""

    def __init__(self, tokens: list[Token], path: Path | None = None) -> None:
        self._tokens = _with_bytes(tokens)
        self._path = path
        self._stamp = _stamp(path) if path is not None else None
        self._checked = time.monotonic()
        self._fault = ""

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        return cls(parse_tokens(_read_token_file(path), str(path)), path)

    def __len__(self) -> int:
        return len(self._tokens)

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._path is None or now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            tokens = parse_tokens(_read_token_file(self._path), str(self._path))
        except TokenFileError as exc:
            self._tokens, self._fault = [], str(exc)
            log.error("the token file changed and cannot be used; every token is refused: %s", exc)
            return
        self._tokens, self._fault = _with_bytes(tokens), ""
        log.info("token file %s changed: %d tokens", self._path, len(tokens))

    def authenticate(self, authorization: str | None) -> Token:
        """The token of an ``authorization: Bearer <token>`` header, or raise Unauthenticated."""
        self._refresh()
        if not authorization:
            raise Unauthenticated(
                "authorization: this daemon needs a token; send 'authorization: Bearer <token>'"
            )
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthenticated("authorization: must be 'Bearer <token>'")
        if self._fault:
            raise Unauthenticated(
                "authorization: the daemon's token file cannot be used now (its log says why); "
                "no token is accepted until it is fixed"
            )
        given = presented.strip().encode()
        found: Token | None = None
        for token, secret in self._tokens:  # no early exit: the time does not depend on where
            if hmac.compare_digest(secret, given):
                found = token
        if found is None:
            raise Unauthenticated("authorization: the token is not known to this daemon")
        return found


def _with_bytes(tokens: list[Token]) -> list[tuple[Token, bytes]]:
    return [(t, t.secret.encode()) for t in tokens]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file: size, modification time and inode (None: gone)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(path: Path, name: str, scope: Scope = Scope.GENERATE) -> str:
    """Append a new random token for ``name`` to ``path`` (created with mode 0600) and
    return it. On Windows the mode bits do not apply: the file is protected by the access
    list it inherits from its folder (the user's profile by default)."""
    if not NAME_PATTERN.fullmatch(name):
        raise TokenFileError(
            f"NAME: {name!r} must be 1-64 letters, digits or _.@- (starting with one of the first)"
        )
    existing = _read_token_file(path) if path.exists() else ""
    if existing.strip():
        try:
            taken = {t.name for t in parse_tokens(existing, str(path))}
        except TokenFileError as exc:
            if "no tokens" not in str(exc):
                raise
            taken = set()
        if name in taken:
            raise TokenFileError(f"NAME: {name!r} already has a token in {path}")
    secret = new_secret()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{name} {scope.value} {secret}\n"
    if existing and not existing.endswith("\n"):
        line = "\n" + line
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    if sys.platform != "win32":
        os.chmod(path, 0o600)
    return secret


def default_token_file() -> Path:
    from .config import default_home

    return default_home() / "tokens"


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    """``pixelkiln token create NAME [--scope admin] [--file PATH]``."""
    sub = parser.add_subparsers(dest="token_command", required=True)
    create = sub.add_parser("create", help="append a new random token to a token file")
    create.add_argument("name", help="the client's name: its identity for jobs and fairness")
    create.add_argument(
        "--scope",
        default=Scope.GENERATE.value,
        choices=[s.value for s in Scope],
        help="generate (default): generate, live, cancel, list, status; admin: also load/unload",
    )
    create.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"the token file (default {default_token_file()}); serve it with --token-file",
    )


def run_token(args: argparse.Namespace) -> int:
    """Create the token and print it (the only time it is shown); SystemExit on a mistake."""
    path = args.file or default_token_file()
    try:
        secret = create_token(path, args.name, Scope(args.scope))
    except (TokenFileError, OSError) as exc:
        raise SystemExit(f"pixelkiln token create: {exc}") from None
    protection = (
        "protected by its folder's access list (Windows ignores mode bits)"
        if sys.platform == "win32"
        else "mode 0600"
    )
    print(secret)
    print(f"added {args.name!r} ({args.scope}) to {path}, {protection}", file=sys.stderr)
    return 0
