"""Blocking client. One channel per Client; safe to share between threads.

from pixelkiln import Client

with Client("127.0.0.1:50051") as client:
    result = client.generate("mossy cobblestone", size=512, seed=7)
    result.image.save("stone.png")
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import _replay, _request
from ._channel import PemSource, Security
from .errors import PixelKilnError, from_rpc_error
from .events import MAP_NAMES, RECIPE_PNG_KEY, Event, Result, event_from_pb
from .live import LiveSession
from .v1 import generator_pb2 as gen_pb
from .v1 import generator_pb2_grpc as gen_grpc
from .v1 import models_pb2 as models_pb
from .v1 import models_pb2_grpc as models_grpc

DEFAULT_PORT = 50051  # the daemon's (pixelkiln serve --port)
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
ADDRESS_ENV = "PIXELKILN_ADDRESS"
# Sent with every call so the daemon can be fair between clients sharing a connection.
CLIENT_ID_HEADER = "pixelkiln-client-id"
# Matches the daemon's default; a 1024x1024 raw RGBA image alone is 4 MiB, grpcio's default.
MAX_MESSAGE_BYTES = 65 * 1024 * 1024
# Answers of a health poll that mean "not up yet": no listener, or a daemon too busy starting
# (Ray joining, a model loading on a loaded machine) to answer one poll within the timeout.
STARTING = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def default_address() -> str:
    """Where a client given no address connects: $PIXELKILN_ADDRESS, else 127.0.0.1:50051
    (the ``pixelkiln`` command's --address default too)."""
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


# gRPC target schemes, whose address is left as given (``unix:/run/pk.sock``, ``dns:///h:1``).
_SCHEMES = ("unix:", "unix-abstract:", "ipv4:", "ipv6:", "dns:", "vsock:")


def resolve_address(address: str | None = None) -> str:
    """Where a client connects: ``address`` (else :func:`default_address`) with the daemon's
    port 50051 when it names none (gRPC's own default would be 443): ``gpu-box`` is
    ``gpu-box:50051``, ``[::1]`` or ``::1`` is ``[::1]:50051``. Used by Client, AsyncClient
    and the ``pixelkiln`` command."""
    address = (address or default_address()).strip()
    if "://" in address or address.lower().startswith(_SCHEMES):
        return address
    if address.startswith("["):  # [v6] or [v6]:port
        return address if "]:" in address else f"{address}:{DEFAULT_PORT}"
    if address.count(":") > 1:  # a bare IPv6 address: no port can follow it unbracketed
        return f"[{address}]:{DEFAULT_PORT}"
    return address if ":" in address else f"{address}:{DEFAULT_PORT}"


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def _sync_channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """The blocking client's: a Generate stream is read on the thread that iterates it,
    not handed over from gRPC's channel thread (grpcio's SingleThreadedUnaryStream, an
    experimental option since 1.28: 0.3 ms less per request here, benchmarks/overhead.py's
    case). A cancel from another thread still ends the iteration (tests/test_client_threads.py)."""
    from grpc import experimental

    single = experimental.ChannelOptions.SingleThreadedUnaryStream
    return [*channel_options(max_message_bytes), (single, 1)]


class GenerationStream:
    """Iterate to receive events; ``cancel()`` stops the request on the daemon."""

    def __init__(self, call: Any, client: Client) -> None:
        self._call = call
        self._client = client
        self._timeout = client.timeout
        self.request_id = ""

    def __iter__(self) -> Iterator[Event]:
        try:
            for msg in self._call:
                event = event_from_pb(msg)
                self.request_id = msg.request_id
                yield event
        except grpc.RpcError as err:
            raise from_rpc_error(err, self._timeout) from None

    def cancel(self) -> bool:
        """Cancel on the daemon (stops at the next step, skips the decode)."""
        if self.request_id:
            return self._client.cancel(self.request_id)
        self._call.cancel()
        return True


class Client:
    """A daemon's client: at ``address``, else $PIXELKILN_ADDRESS, else 127.0.0.1:50051
    (:func:`default_address`). On a studio network pass ``token=`` (or set PIXELKILN_TOKEN) and
    ``root_certificates=`` (the CA's PEM path or bytes, or PIXELKILN_TLS_CA) for TLS;
    ``client_cert=``/``client_key=`` when the daemon requires client certificates.

    Client("gpu-box:50051", token="pk_...", root_certificates="studio-ca.pem")
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: PemSource = None,
        client_cert: PemSource = None,
        client_key: PemSource = None,
    ) -> None:
        self.address = address = resolve_address(address)
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        security = Security.resolve(token, tls, root_certificates, client_cert, client_key)
        self._metadata = security.metadata(CLIENT_ID_HEADER, self.client_id)
        self._channel = security.channel(address, _sync_channel_options(max_message_bytes))
        self._gen = gen_grpc.GeneratorStub(self._channel)
        self._models = models_grpc.ModelsStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise from_rpc_error(err, self.timeout) from None

    def stream(self, prompt: str = "", **options: Any) -> GenerationStream:
        """Start a generation; iterate the result for Accepted/Queued/Progress/Preview/Result.
        Options are those of :func:`pixelkiln._request.build_request`; an unknown one is a
        TypeError naming the likeliest meant."""
        _request.check_keywords("stream", options)
        request = _request.build_request(prompt, **options)
        return GenerationStream(
            self._gen.Generate(request, timeout=self.timeout, metadata=self._metadata), self
        )

    def generate(
        self,
        prompt: str = "",
        *,
        on_event: Callable[[Event], None] | None = None,
        **options: Any,
    ) -> Result:
        """Generate and wait for the result; ``on_event`` sees every event on the way. Without
        ``on_event`` the daemon sends the Result alone (unless ``progress=True`` or previews
        are asked for): one message, nothing beside the model to write or read."""
        _request.check_keywords("generate", options, extra=("on_event",))
        if on_event is None:
            _request.quiet_defaults(options)
        for event in self.stream(prompt, **options):
            if on_event is not None:
                on_event(event)
            if isinstance(event, Result):
                return event
        raise PixelKilnError(grpc.StatusCode.UNKNOWN, "stream ended without a result")

    def replay(self, recipe: dict[str, Any] | str | Path, **overrides: Any) -> Result:
        """Reproduce a recipe (a dict, JSON text, or a .json/.png path). Pass init_image/mask
        again for img2img and inpainting recipes (a file other than the one the recipe was
        made with warns: ``_replay.ReplayInputWarning``, a UserWarning). The PNG of one image
        of a batch replays the batch (its pixels depend on it) and returns that image alone."""
        data = load_recipe(recipe)
        index = _replay.image_index(data)
        result = self.generate(**_replay.replay_request(data, overrides))
        return result if index is None else one_of_batch(result, index)

    def live(self, **settings: Any) -> LiveSession:
        """Open a live session; ``settings`` (prompt, strength, seed, steps, size, ...) go with
        the first input and persist until changed. Use as a context manager. The client's
        ``timeout`` does not apply: a session lasts until closed (or idle for the daemon's
        --live-idle-timeout)."""
        return LiveSession(self._gen, settings, None, self._metadata)

    def cancel(self, request_id: str) -> bool:
        return bool(
            self._unary(self._gen.Cancel, gen_pb.CancelRequest(request_id=request_id)).cancelled
        )

    def models(self) -> list[models_pb.ModelInfo]:
        return list(self._unary(self._models.List, models_pb.ListModelsRequest()).models)

    def catalogue(self) -> models_pb.ListModelsResponse:
        """The models (``.models``) and the name of the daemon's default (``.default_model``)."""
        return self._unary(self._models.List, models_pb.ListModelsRequest())

    def load(self, name: str) -> models_pb.ModelInfo:
        return self._unary(self._models.Load, models_pb.LoadModelRequest(name=name))

    def unload(self, name: str) -> bool:
        return bool(
            self._unary(self._models.Unload, models_pb.UnloadModelRequest(name=name)).unloaded
        )

    def status(self) -> models_pb.StatusResponse:
        return self._unary(self._models.Status, models_pb.StatusRequest())

    def health(self, service: str = "") -> str:
        """ "SERVING", "NOT_SERVING", ... of the standard grpc.health.v1 service."""
        resp = self._unary(self._health.Check, health_pb2.HealthCheckRequest(service=service))
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.1) -> None:
        """Poll health until SERVING (the default model is warm) or raise after ``timeout``.
        A poll refused (no listener yet) or unanswered within the call timeout (a daemon busy
        starting) counts as not ready yet; any other error raises at once."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health() == "SERVING":
                    return
            except PixelKilnError as err:
                if err.code not in STARTING:
                    raise
            if time.monotonic() > deadline:
                raise PixelKilnError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"daemon at {self.address} not ready after {timeout:.0f} s",
                )
            time.sleep(interval)


def one_of_batch(result: Result, index: int) -> Result:
    """``result`` narrowed to its image ``index`` (no atlas: that is the batch's)."""
    return dataclasses.replace(result, images=[result.images[index]], atlas=None, atlas_frames=None)


def load_recipe(recipe: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A recipe from a dict, JSON text, a .json file or a PNG written by PixelKiln.

    Raises ValueError saying what is wrong (no recipe in the file, not JSON, not an object),
    FileNotFoundError when the path does not exist."""
    if isinstance(recipe, dict):
        return recipe
    text = str(recipe)
    if text.lstrip().startswith("{"):
        return _recipe_object(text, "the recipe text")
    path = Path(recipe)
    data = path.read_bytes()
    if data.startswith(b"\x89PNG"):
        from PIL import Image

        with Image.open(path) as img:
            raw = img.text.get(RECIPE_PNG_KEY)  # type: ignore[attr-defined]
        if not raw:
            raise ValueError(_no_recipe(path))
        return _recipe_object(raw, str(path))
    if data[:3] == b"\xff\xd8\xff" or data[8:12] == b"WEBP":
        kind = "JPEG" if data[:3] == b"\xff\xd8\xff" else "WebP"
        sidecar = recipe_sidecar(path)
        if sidecar.is_file():
            raise ValueError(
                f"{path} is a {kind} image, which carries no recipe; its recipe is "
                f"{sidecar.name} beside it: replay that"
            )
        raise ValueError(
            f"{path} is a {kind} image, which carries no recipe; pass a PNG written by "
            f"PixelKiln or its .json recipe (the pixelkiln command writes {sidecar.name})"
        )
    return _recipe_object(data.decode("utf-8", errors="replace"), str(path))


def recipe_sidecar(image: Path) -> Path:
    """Where the ``pixelkiln`` command writes the recipe of a JPEG or WebP result (which holds
    no text chunk): ``wall.webp`` -> ``wall.recipe.json``, a recipe ``replay`` reads."""
    return image.with_name(f"{image.stem}.recipe.json")


def _no_recipe(path: Path) -> str:
    """Why a PNG holds no recipe, and what to replay instead."""
    stem = path.stem
    for kind in MAP_NAMES.values():
        if stem.endswith(f"_{kind}") and len(stem) > len(kind) + 1:
            albedo = path.with_name(f"{stem[: -len(kind) - 1]}{path.suffix}")
            return (
                f"{path} looks like a {kind} map PixelKiln wrote; maps carry no recipe: "
                f"replay the image it was derived from ({albedo}), whose recipe makes its "
                "maps too"
            )
    return (
        f"{path} carries no PixelKiln recipe (only PNGs written by PixelKiln do; "
        "pass one of those or its .json recipe)"
    )


def _recipe_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{where} is not a recipe: its JSON is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{where} is not a recipe: not JSON ({exc.msg} at line {exc.lineno}); pass a PNG "
            "written by PixelKiln or its .json recipe"
        ) from None
    request = value.get("request", value) if isinstance(value, dict) else None
    if not isinstance(request, dict) or "prompt" not in request:
        raise ValueError(
            f"{where} is not a recipe: a JSON object with a 'request' holding a 'prompt' is "
            "expected (as PixelKiln writes next to its results)"
        )
    return dict(value)
