"""The daemon's network exposure: the binding rule, the token file, TLS for both carriers.

Loopback with no token is the single-user default. A non-loopback host needs a token file and
TLS, or ``--insecure`` (then a warning names what is exposed). One certificate serves gRPC and
``wss://``; a client CA makes both require client certificates.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

import grpc

from .auth import TokenStore, UnreadableFile, loose_permissions, read_small_file
from .config import ServerConfig
from .services.identity import is_loopback_host

log = logging.getLogger(__name__)


class SecurityConfigError(ValueError):
    """A configuration the daemon refuses to start with; the message names the flags."""


@dataclass(frozen=True)
class TlsMaterial:
    cert: bytes
    key: bytes
    client_ca: bytes | None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def _read(path: object, flag: str) -> bytes:
    """A PEM file's bytes; ws_ssl_context reads the same paths again, only after this."""
    try:
        return read_small_file(str(path))
    except OSError as exc:
        raise SecurityConfigError(f"{flag}: cannot read {path} ({exc.strerror})") from None
    except UnreadableFile as exc:
        raise SecurityConfigError(f"{flag}: {exc}") from None


def load_tls(config: ServerConfig) -> TlsMaterial | None:
    if config.tls_cert is None and config.tls_key is None:
        if config.tls_client_ca is not None:
            raise SecurityConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise SecurityConfigError("--tls-cert and --tls-key go together")
    material = TlsMaterial(
        cert=_read(config.tls_cert, "--tls-cert"),
        key=_read(config.tls_key, "--tls-key"),
        client_ca=_read(config.tls_client_ca, "--tls-client-ca") if config.tls_client_ca else None,
    )
    ws_ssl_context(config)  # a bad certificate or key fails here, naming the flag
    return material


def ws_ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The WebSocket carrier's TLS: the same files as gRPC's."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (ssl.SSLError, OSError) as exc:
        raise SecurityConfigError(
            f"--tls-cert/--tls-key: not a usable PEM certificate and key ({exc})"
        ) from None
    if config.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(config.tls_client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise SecurityConfigError(f"--tls-client-ca: not a usable PEM file ({exc})") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def load_tokens(config: ServerConfig, warn: bool = True) -> TokenStore | None:
    if config.token_file is None:
        return None
    from .auth import TokenFileError

    try:
        store = TokenStore.load(config.token_file)
    except TokenFileError as exc:
        raise SecurityConfigError(f"--token-file: {exc}") from None
    if warn and loose_permissions(config.token_file):
        log.warning("--token-file %s can be read by other users; chmod 600 it", config.token_file)
    return store


def preflight(config: ServerConfig) -> None:
    """Everything the daemon would refuse to start with, checked before anything loads."""
    tokens = load_tokens(config, warn=False)
    tls = load_tls(config)
    check_binding(config, tokens is not None, tls is not None, warn=False)


def check_binding(config: ServerConfig, tokens: bool, tls: bool, warn: bool = True) -> None:
    """The binding rule: raise SecurityConfigError, or warn under --insecure."""
    if is_loopback_host(config.host) or (tokens and tls):
        return
    needed = (("--token-file", tokens), ("--tls-cert/--tls-key", tls))
    missing = [flag for flag, have in needed if not have]
    if not config.insecure:
        raise SecurityConfigError(
            f"--host {config.host} is not loopback: give {' and '.join(missing)}, or pass "
            "--insecure to expose the daemon anyway"
        )
    if not warn:
        return
    carriers = [f"gRPC on {config.host}:{config.port}"]
    if config.ws_port is not None:
        carriers.append(f"WebSocket on {config.host}:{config.ws_port}")
    if config.metrics_port is not None:
        carriers.append(f"metrics on {config.host}:{config.metrics_port}")
    exposed = (
        "anyone who can reach it can generate and load and unload models"
        if not tokens
        else "tokens and images cross the network unencrypted"
    )
    log.warning(
        "--insecure: %s without %s: %s", " and ".join(carriers), " and ".join(missing), exposed
    )
