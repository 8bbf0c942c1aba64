"""Who is calling, on either transport: tokens, the client-id header, the Origin rule.

With a token file, every call but health needs ``authorization: Bearer <token>`` (gRPC
metadata, or a header on the WebSocket handshake) and the token's name is the caller's
identity. Without one (the loopback default), the self-declared ``pixelkiln-client-id``
header names the caller on loopback; otherwise the peer address does.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc

from ..auth import AUTH_HEADER, Scope, TokenStore
from ..errors import PermissionDenied, Unauthenticated
from .operations import Caller

CLIENT_ID_HEADER = "pixelkiln-client-id"
# Open without a token: launchers and load balancers poll Check. Watch holds a stream per call
# (18,400 of them held 300 MiB for a peer with no token), so it needs one like the rest.
OPEN_METHODS = ("/grpc.health.v1.Health/Check",)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1 : rest.find("]")]
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return ""


def one_value(values: Sequence[str], name: str) -> str | None:
    """A header's value, None when it is absent. Sent more than once it is refused (401 for
    the token, 403 for Origin): a proxy in front of the daemon and the daemon could each act
    on a different one of the copies."""
    if len(values) > 1:
        refuse = PermissionDenied if name.lower() == "origin" else Unauthenticated
        raise refuse(f"{name}: sent {len(values)} times; send it once")
    return values[0] if values else None


def grpc_header(metadata: Any, name: str) -> str | None:
    """One gRPC metadata key's value (see :func:`one_value`)."""
    return one_value([str(value) for key, value in metadata or () if key == name], name)


class Gatekeeper:
    """Authentication and identity for both transports; one per daemon."""

    def __init__(
        self, tokens: TokenStore | None = None, allowed_origins: Iterable[str] = ()
    ) -> None:
        self.tokens = tokens
        self.allowed_origins = frozenset(o.rstrip("/") for o in allowed_origins)

    def _token_caller(self, authorization: str | None, peer: str) -> Caller:
        assert self.tokens is not None
        token = self.tokens.authenticate(authorization)
        return Caller(client_id=f"token:{token.name}", scope=token.scope, peer=peer)

    def grpc_caller(self, context: grpc.aio.ServicerContext) -> Caller:
        metadata = context.invocation_metadata()
        peer = str(context.peer())
        if self.tokens is not None:
            return self._token_caller(grpc_header(metadata, AUTH_HEADER), peer)
        declared = dict(metadata or ()).get(CLIENT_ID_HEADER)
        if declared and is_loopback_host(peer_host(peer)):
            return Caller(client_id=f"id:{declared}", peer=peer)
        return Caller(client_id=peer, peer=peer)

    def ws_caller(self, headers: Any, peer: str) -> Caller:
        """A WebSocket connection's caller: its token's name, else one id per connection."""
        if self.tokens is not None:
            return self._token_caller(one_value(headers.get_all(AUTH_HEADER), AUTH_HEADER), peer)
        return Caller(client_id=f"ws:{uuid.uuid4().hex}", peer=peer)

    def origin_allowed(self, origin: str) -> bool:
        """An exact ``scheme://host[:port]``, or ``scheme://host:*`` for any port of it."""
        origin = origin.rstrip("/")
        if origin in self.allowed_origins:
            return True
        base, sep, port = origin.rpartition(":")
        return bool(sep) and port.isdigit() and f"{base}:*" in self.allowed_origins

    def check_origin(self, origin: str | None) -> None:
        """Browsers send Origin on every WebSocket handshake; engines do not. A page open in a
        browser must not drive the daemon unless its origin is allowed (--ws-allow-origin)."""
        if origin is not None and not self.origin_allowed(origin):
            raise PermissionDenied(
                f"Origin: {origin!r} is not allowed (browsers are refused unless their origin "
                "is listed with --ws-allow-origin)"
            )


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> Any:
    """A handler that answers ``code`` without reading the request: every refusal takes a
    request stream it never reads (a unary handler makes grpc take the whole message first,
    so a peer with no token could make the daemon hold 16 x 60 MiB half-sent messages)."""

    async def deny_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def deny_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_stream)
    return grpc.stream_unary_rpc_method_handler(deny_unary)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every method but health without a known token (reflection included), before
    the request is even decoded. The services read the caller's scope with the Gatekeeper."""

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in OPEN_METHODS:
            return handler
        try:
            self.tokens.authenticate(
                grpc_header(handler_call_details.invocation_metadata, AUTH_HEADER)
            )
        except Unauthenticated as exc:
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, exc.message)
        return handler


__all__ = ["CLIENT_ID_HEADER", "Gatekeeper", "Scope", "TokenInterceptor", "is_loopback_host"]
