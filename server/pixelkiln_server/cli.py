"""``pixelkiln serve``: run the daemon. Reached through the ``pixelkiln`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from .config import MIB, ServerConfig, default_home


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="gRPC port (default 50051)")
    parser.add_argument(
        "--ws-port",
        type=int,
        default=50052,
        help="WebSocket carrier port for Unity/Godot, ws://HOST:PORT/v1 (default 50052; -1: off)",
    )
    parser.add_argument(
        "--model",
        default="tiny-random",
        help="default model: a preset (tiny-random, sd-turbo, sdxl-turbo), a hub id, a diffusers "
        "folder or a .safetensors file (default tiny-random: random weights, no download)",
    )
    parser.add_argument(
        "--add-model",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="register another model under NAME (repeatable)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--queue-size", type=int, default=32, help="max queued requests")
    parser.add_argument(
        "--max-message-mib",
        type=int,
        default=65,
        help="message limit in MiB for gRPC and WebSocket frames (default 65: a 4096x4096 "
        "RGBA8 image plus its request)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=1,
        help="run up to N compatible queued requests as one batch (default 1: off)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        help="how long the worker waits to fill a batch (default 0: only what is queued)",
    )
    parser.add_argument(
        "--max-live-sessions", type=int, default=8, help="concurrent live sessions (default 8)"
    )
    parser.add_argument(
        "--live-idle-timeout",
        type=float,
        default=30.0,
        help="close a live session after this many seconds without input (default 30)",
    )
    parser.add_argument("--grace", type=float, default=10.0, help="shutdown grace in seconds")
    parser.add_argument("--home", type=Path, default=None, help="cache folder for built models")
    parser.add_argument(
        "--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)"
    )
    parser.add_argument("--log-level", default="INFO")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    extra = {}
    for item in args.add_model:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise SystemExit(f"--add-model wants NAME=SOURCE, got {item!r}")
        extra[name] = source
    return ServerConfig(
        host=args.host,
        port=args.port,
        ws_port=None if args.ws_port < 0 else args.ws_port,
        default_model=args.model,
        extra_models=extra,
        device=args.device,
        dtype=args.dtype,
        queue_size=args.queue_size,
        max_message_bytes=args.max_message_mib * MIB,
        shutdown_grace_s=args.grace,
        home=args.home or default_home(),
        offline=args.offline,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        max_live_sessions=args.max_live_sessions,
        live_idle_timeout_s=args.live_idle_timeout,
    )


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from .app import serve

    return asyncio.run(serve(config_from_args(args)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixelkiln-server", description="Run the daemon.")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
