"""Daemon configuration: one dataclass, filled from the command line (or by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .catalogue import SHIPPED_MODEL
from .model_options import ModelOptions

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Request limits. Every one is named in the error a client gets when it is exceeded."""

    max_pixels: int = 2048 * 2048
    max_side: int = 4096
    max_images: int = 8
    max_prompt_chars: int = 4000
    max_input_pixels: int = 4096 * 4096
    max_preview_side: int = 1024
    # width * height * num_images of one request (--max-request-megapixels). The issue's
    # measurement: 2048x2048 x 8 (33.5 MP) took 7 GB and 90 s; 16.8 MP (four 2048x2048 or eight
    # 1024x1024 images) keeps one request near half of that, and is 64 MiB of RGBA8, about the
    # default message limit, past which results cannot be delivered anyway.
    max_request_pixels: int = 16_800_000
    # The largest result message (ServerConfig.max_message_bytes; set from it): a request whose
    # images, maps and atlas would be larger raw (RGBA8) is refused before it is accepted.
    max_result_bytes: int = 65 * MIB


@dataclass(frozen=True)
class RayOptions:
    """``--runner ray`` (README "Scaling out"): the Ray cluster, and the Ray Serve application
    whose replicas are the runners."""

    # "auto": the cluster this machine joined (`ray start`); "local": a private one started
    # here; else an address (host:6379, ray://host:10001).
    address: str = "auto"
    app: str = "pixelkiln-runners"
    replicas: int = 1
    # max_replicas > 0: Serve scales between min and max replicas with the load.
    min_replicas: int = 0
    max_replicas: int = 0
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0


def default_home() -> Path:
    env = os.environ.get("PIXELKILN_HOME")
    return Path(env) if env else Path.home() / ".cache" / "pixelkiln"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    # The WebSocket carrier (ws://host:ws_port/v1) for Unity and Godot; None turns it off.
    ws_port: int | None = 50052
    # Prometheus metrics over HTTP(S) on host:metrics_port/metrics; None (the default) is off.
    metrics_port: int | None = None
    default_model: str = SHIPPED_MODEL
    # Extra models by name -> source (hub id, folder or .safetensors file).
    extra_models: dict[str, str] = field(default_factory=dict)
    # Speed/memory options and LoRA adapters by model name (``serve`` sets the default
    # model's); models not named here get ModelOptions() (automatic defaults).
    model_options: dict[str, ModelOptions] = field(default_factory=dict)
    # Budgets for loaded models' memory: on CUDA None means the card's total minus a margin;
    # on other devices None means unlimited. Least recently used models make room.
    vram_budget_bytes: int | None = None
    memory_budget_bytes: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    # Model runners: "process" (one child process per device, the default of ``serve``),
    # "thread" (in this process; tests) or "ray" (Ray Serve replicas, ``ray``).
    # ``devices``: "auto", "cpu" or "cuda:0,cuda:1" (process and thread runners).
    runner: str = "process"
    devices: str = "auto"
    ray: RayOptions = field(default_factory=RayOptions)
    # A runner that sends nothing (not even its heartbeat) this long while it runs a job is
    # killed and restarted.
    runner_hang_timeout_s: float = 60.0
    # Tests only: runners accept ``fault`` messages (die at a chosen point).
    runner_faults: bool = False
    queue_size: int = 32
    # Message limit, both directions, gRPC and WebSocket. grpcio's default 4 MiB is smaller
    # than one raw 1024x1024 RGBA image (4 MiB + framing); 65 MiB carries a 4096x4096 RGBA8
    # input (64 MiB of pixels) with its request around it.
    max_message_bytes: int = 65 * MIB
    shutdown_grace_s: float = 10.0
    home: Path = field(default_factory=default_home)
    offline: bool = False
    limits: Limits = field(default_factory=Limits)
    warm_up: bool = True
    # Live sessions: how many at once, and how long one may stay silent before it is closed.
    max_live_sessions: int = 8
    # Of them, how many one client may hold (a client cannot take every place).
    max_live_per_client: int = 4
    live_idle_timeout_s: float = 30.0
    # Micro-batching: compatible queued txt2img requests (same model, size, steps, guidance,
    # tiling) run as one pipeline call. The worker waits at most batch_wait_ms for company;
    # 0 batches only what is already waiting, so a lone request never waits. Off (1) by
    # default: batched kernels round differently (~1e-6), so a batched image can differ from
    # its recipe's replay by one level in rare pixels; turn it on for throughput on a GPU.
    max_batch: int = 1
    batch_wait_ms: float = 0.0
    # Security (README "Running on a studio network"): a token file turns tokens on; a cert
    # and key turn TLS on for gRPC and WebSocket alike; a client CA requires client
    # certificates. A non-loopback host needs tokens and TLS, or insecure=True.
    token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    # Origins (scheme://host[:port]) whose browser pages may open the WebSocket carrier.
    ws_allowed_origins: tuple[str, ...] = ()
    # A WebSocket client that takes no bytes for this long while the daemon has some for it
    # (it stopped reading) is disconnected and its requests end, as if it had gone. 0: never.
    ws_send_stall_s: float = 60.0
    # Model-loading policy (services/model_policy.py): folders and files clients may name,
    # hub downloads by admin clients, pickle-based weights.
    model_roots: tuple[Path, ...] = ()
    allow_downloads: bool = False
    allow_pickle: bool = False
    # Per client (a token's name, else what identity.py tells): generations queued or running;
    # as many finished results it has not read are held for it.
    max_jobs_per_client: int = 16
    # Events waiting to be sent on one stream (a slow reader): previews are dropped first;
    # past this many the stream ends with RESOURCE_EXHAUSTED.
    stream_backlog: int = 64

    def __post_init__(self) -> None:
        if self.limits.max_result_bytes != self.max_message_bytes:
            limits = replace(self.limits, max_result_bytes=self.max_message_bytes)
            object.__setattr__(self, "limits", limits)
