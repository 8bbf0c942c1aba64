"""How a client reaches a daemon: plain or TLS channel, and the token sent with every call.

A daemon on a studio network wants ``authorization: Bearer <token>`` (``token=`` or the
``PIXELKILN_TOKEN`` environment variable) and usually TLS: ``root_certificates=`` (a PEM path
or bytes, or ``PIXELKILN_TLS_CA``) names the CA that signed the daemon's certificate;
``tls=True`` alone trusts the system's roots. ``client_cert=``/``client_key=`` answer a daemon
started with ``--tls-client-ca``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

TOKEN_ENV = "PIXELKILN_TOKEN"
CA_ENV = "PIXELKILN_TLS_CA"
AUTH_HEADER = "authorization"

PemSource = str | Path | bytes | None


def _pem(value: PemSource, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {value} ({exc.strerror})") from None


@dataclass(frozen=True)
class Security:
    token: str | None = None
    tls: bool = False
    root_certificates: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None

    @classmethod
    def resolve(
        cls,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: PemSource = None,
        client_cert: PemSource = None,
        client_key: PemSource = None,
    ) -> Security:
        """Arguments first, then the environment (PIXELKILN_TOKEN, PIXELKILN_TLS_CA)."""
        if token is None:
            token = os.environ.get(TOKEN_ENV) or None
        if root_certificates is None and os.environ.get(CA_ENV):
            root_certificates = os.environ[CA_ENV]
        roots = _pem(root_certificates, "root_certificates")
        cert = _pem(client_cert, "client_cert")
        key = _pem(client_key, "client_key")
        if (cert is None) != (key is None):
            raise ValueError("client_cert and client_key go together")
        use_tls = bool(tls) or roots is not None or cert is not None
        if tls is False and use_tls:
            raise ValueError("tls=False contradicts the certificates given")
        return cls(token, use_tls, roots, cert, key)

    def metadata(self, client_id_header: str, client_id: str) -> tuple[tuple[str, str], ...]:
        pairs = [(client_id_header, client_id)]
        if self.token:
            pairs.append((AUTH_HEADER, f"Bearer {self.token}"))
        return tuple(pairs)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_key,
            certificate_chain=self.client_cert,
        )

    def channel(self, address: str, options: list[tuple[str, int]]) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(address, self.credentials(), options=options)
        return grpc.insecure_channel(address, options=options)

    def aio_channel(self, address: str, options: list[tuple[str, int]]) -> Any:
        if self.tls:
            return grpc.aio.secure_channel(address, self.credentials(), options=options)
        return grpc.aio.insecure_channel(address, options=options)
