"""Godot 4 engine objects for the client's tokens and TLS, for gdvm.py: ``OS`` (environment,
features), ``X509Certificate.load``, ``TLSOptions.client`` and ``HTTPClient`` (the handshake
probe), backed by real sockets and Python's ``ssl``.

Godot behaviour followed (core/io/http_client_tcp.cpp, crypto/crypto.cpp):

- ``X509Certificate.load(path)`` returns ``ERR_CANT_OPEN`` for a missing file and ``FAILED``
  for a file without a PEM certificate; ``TLSOptions.client(ca)`` trusts exactly that CA (and
  checks the host name), ``TLSOptions.client()`` the default roots.
- ``HTTPClient``: ``connect_to_host`` returns at once (``STATUS_CONNECTING``), a later ``poll``
  sees ``STATUS_CONNECTED``, ``STATUS_CANT_CONNECT`` or ``STATUS_TLS_HANDSHAKE_ERROR``;
  ``request`` gives ``STATUS_REQUESTING`` until the answer is in, then ``STATUS_BODY`` while
  body bytes are unread, then ``STATUS_CONNECTED`` (``STATUS_DISCONNECTED`` after
  ``Connection: close``).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

from ..stubs.gdscript_builtins import Native, PackedByteArray
from .godot_natives import FAILED, OK, NativeObject

ERR_CANT_OPEN = 19
(
    STATUS_DISCONNECTED, STATUS_RESOLVING, STATUS_CANT_RESOLVE, STATUS_CONNECTING,
    STATUS_CANT_CONNECT, STATUS_CONNECTED, STATUS_REQUESTING, STATUS_BODY,
    STATUS_CONNECTION_ERROR, STATUS_TLS_HANDSHAKE_ERROR,
) = range(10)  # fmt: skip
METHOD_GET = 0


class X509Certificate(NativeObject):
    CLASS = "X509Certificate"
    BASES = ("Resource", "RefCounted", "Object")

    def __init__(self, vm: Any) -> None:
        super().__init__(vm)
        self.pem = ""

    def gd_load(self, path: str) -> int:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            self.vm.engine_errors.append(f"Cannot open X509Certificate file '{path}'.")
            return ERR_CANT_OPEN
        if "-----BEGIN CERTIFICATE-----" not in text:
            self.vm.engine_errors.append(f"Error parsing X509 certificates from file '{path}'.")
            return FAILED
        self.pem = text
        return OK


class TLSOptions(NativeObject):
    CLASS = "TLSOptions"
    BASES = ("RefCounted", "Object")

    def __init__(self, vm: Any, ca: X509Certificate | None, common_name: str = "") -> None:
        super().__init__(vm)
        self.ca, self.common_name = ca, common_name

    def context(self) -> ssl.SSLContext:
        if self.ca is None:
            return ssl.create_default_context()
        return ssl.create_default_context(cadata=self.ca.pem)


def ssl_context(tls: Any) -> ssl.SSLContext:
    return tls.context() if isinstance(tls, TLSOptions) else ssl.create_default_context()


class HTTPClient(NativeObject):
    CLASS = "HTTPClient"
    BASES = ("RefCounted", "Object")

    def __init__(self, vm: Any) -> None:
        super().__init__(vm)
        self.status = STATUS_DISCONNECTED
        self._lock = threading.Lock()
        self._next: int | None = None
        self._sock: socket.socket | None = None
        self._host = ""
        self._code = 0
        self._body = b""
        self._closes = False

    def _set(self, status: int) -> None:
        with self._lock:
            self._next = status

    def gd_connect_to_host(self, host: str, port: int, tls: Any = None) -> int:
        self._host = host
        self.status = STATUS_CONNECTING

        def run() -> None:
            try:
                sock = socket.create_connection((host, port), timeout=10)
            except OSError:
                self._set(STATUS_CANT_CONNECT)
                return
            if tls is not None:
                try:
                    sock = ssl_context(tls).wrap_socket(sock, server_hostname=host)
                except (ssl.SSLError, OSError):
                    self._set(STATUS_TLS_HANDSHAKE_ERROR)
                    return
            self._sock = sock
            self._set(STATUS_CONNECTED)

        threading.Thread(target=run, daemon=True, name="http-client").start()
        return OK

    def gd_poll(self) -> int:
        with self._lock:
            if self._next is not None:
                self.status, self._next = self._next, None
        return OK

    def gd_get_status(self) -> int:
        return self.status

    def gd_request(self, method: int, path: str, headers: list[str], body: str = "") -> int:
        if self.status != STATUS_CONNECTED or self._sock is None or method != METHOD_GET:
            return FAILED
        sock = self._sock
        lines = [f"GET {path} HTTP/1.1", f"Host: {self._host}", *headers, "", ""]
        self.status = STATUS_REQUESTING

        def run() -> None:
            try:
                sock.sendall("\r\n".join(lines).encode("latin-1"))
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                fields = head.decode("latin-1").split("\r\n")
                length = 0
                for field in fields[1:]:
                    name, _, value = field.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    if name.strip().lower() == "connection":
                        self._closes = value.strip().lower() == "close"
                while len(body) < length:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    body += chunk
                self._code, self._body = int(fields[0].split()[1]), body
                self._set(STATUS_BODY if body else STATUS_CONNECTED)
            except (OSError, ValueError, IndexError):
                self._set(STATUS_CONNECTION_ERROR)

        threading.Thread(target=run, daemon=True, name="http-request").start()
        return OK

    def gd_has_response(self) -> bool:
        return self._code != 0

    def gd_get_response_code(self) -> int:
        return self._code

    def gd_read_response_body_chunk(self) -> PackedByteArray:
        body, self._body = self._body, b""
        self.status = STATUS_DISCONNECTED if self._closes else STATUS_CONNECTED
        return PackedByteArray(body)

    def gd_close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self.status = STATUS_DISCONNECTED


def net_globals(vm: Any, web: bool = False) -> dict[str, Any]:
    statuses = {name: value for name, value in globals().items() if name.startswith("STATUS_")}
    return {
        "OS": Native("OS", {
            "get_environment": lambda name: os.environ.get(name, ""),
            "has_feature": lambda name: web and name == "web",
        }),
        "X509Certificate": Native("X509Certificate", {"new": lambda: X509Certificate(vm)}),
        "TLSOptions": Native("TLSOptions", {
            "client": lambda ca=None, common_name="": TLSOptions(vm, ca, common_name),
        }),
        "HTTPClient": Native("HTTPClient", {
            "new": lambda: HTTPClient(vm), "METHOD_GET": METHOD_GET, **statuses,
        }),
        "ERR_CANT_OPEN": ERR_CANT_OPEN,
    }  # fmt: skip


# String methods the stub builtins lack (used by godot_natives.container_method).
STR_METHODS: dict[str, Any] = {
    "contains": lambda s, what: what in s,
    "to_lower": lambda s: s.lower(),
    "strip_edges": lambda s: s.strip(),
    "trim_prefix": lambda s, p: s[len(p) :] if s.startswith(p) else s,
    "substr": lambda s, start, length=-1: s[start:] if length < 0 else s[start : start + length],
    "find": lambda s, what: s.find(what),
    "rfind": lambda s, what: s.rfind(what),
    "to_int": lambda s: int(s) if s.strip().lstrip("-").isdigit() else 0,
    "replace": lambda s, what, forwhat: s.replace(what, forwhat),
    "trim_suffix": lambda s, p: s[: -len(p)] if p and s.endswith(p) else s,
    "join": lambda s, parts: s.join(parts),
    "get_slice": lambda s, delimiter, index: (s.split(delimiter) + [""] * (index + 1))[index],
}
