"""The flags of ``pixelkiln serve`` (argparse groups); cli.py turns them into a config."""

from __future__ import annotations

import argparse
from pathlib import Path

from .catalogue import PRESETS, SHIPPED_MODEL
from .eventloop import LOOPS
from .logsetup import LEVELS, LOG_FORMATS
from .model_options import OFFLOAD_MODES, QUANTIZE_MODES, RUNTIMES


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
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (https with --tls-cert; a "
        "token with --token-file); off by default",
    )
    parser.add_argument(
        "--model",
        default=SHIPPED_MODEL,
        help=f"default model: a preset ({', '.join(sorted(PRESETS))}), a hub id, a diffusers "
        "folder or a .safetensors file "
        f"(default {SHIPPED_MODEL}: PixelKiln's own texture and sprite model, shipped, no "
        "download; tiny-random: random weights, fastest)",
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
    parser.add_argument(
        "--runner",
        default="process",
        choices=["process", "thread", "ray"],
        help="where models run: one child process per device (default; a crash there ends "
        "only its jobs, with UNAVAILABLE, and the runner is restarted), a thread of the "
        "daemon (no isolation; for debugging), or the replicas of a Ray Serve application "
        "(several machines; the ray extra; README 'Scaling out')",
    )
    parser.add_argument(
        "--ray-address",
        default="auto",
        help="--runner ray: the Ray cluster: auto (the one this machine joined with `ray "
        "start`), local (a private one started here), or host:6379 / ray://host:10001",
    )
    parser.add_argument(
        "--ray-app",
        default="pixelkiln-runners",
        help="--runner ray: the Serve application's name; the first daemon deploys it, "
        "later ones attach to it (default pixelkiln-runners)",
    )
    parser.add_argument(
        "--ray-replicas", type=int, default=1, help="--runner ray: replicas (default 1)"
    )
    parser.add_argument(
        "--ray-min-replicas",
        type=int,
        default=0,
        help="--runner ray: with --ray-max-replicas, Serve scales between the two",
    )
    parser.add_argument(
        "--ray-max-replicas",
        type=int,
        default=0,
        help="--runner ray: autoscaling's upper bound (0: off, --ray-replicas is fixed)",
    )
    parser.add_argument(
        "--ray-gpus-per-replica",
        type=float,
        default=0.0,
        help="--runner ray: GPUs per replica (1 for one GPU each; 0.5 puts two on a GPU)",
    )
    parser.add_argument(
        "--ray-cpus-per-replica", type=float, default=1.0, help="--runner ray (default 1)"
    )
    parser.add_argument(
        "--devices",
        default="auto",
        help="one runner per device: auto (every CUDA device, else MPS, else the CPU; or "
        "--device when it names one), cpu, or a list such as cuda:0,cuda:1 (a device named "
        "twice gets two runners; CPU runners split the cores)",
    )
    parser.add_argument(
        "--runner-hang-timeout",
        type=float,
        default=60.0,
        help="kill and restart a runner that sends nothing (not even its heartbeat, sent every "
        "0.5 s from its own thread whether it runs a job, loads a model or waits) for this "
        "many seconds; a runner just started has at least 120 s for its first message "
        "(default 60)",
    )
    parser.add_argument(
        "--queue-size", type=int, default=32, help="max queued requests (default 32)"
    )
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
        "--max-live-per-client",
        type=int,
        default=4,
        metavar="N",
        help="of those, how many one client may hold (default 4, so that one client cannot "
        "take every place)",
    )
    parser.add_argument(
        "--live-idle-timeout",
        type=float,
        default=30.0,
        help="close a live session after this many seconds without input (default 30)",
    )
    parser.add_argument(
        "--ws-send-stall",
        type=float,
        default=60.0,
        help="disconnect a WebSocket client that takes no bytes for this many seconds while "
        "results wait for it (it stopped reading; its requests end); 0: never (default 60)",
    )
    add_speed_arguments(parser)
    add_security_arguments(parser)
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="shutdown grace in seconds: running work may finish (default 10)",
    )
    parser.add_argument(
        "--stop-on-stdin-close",
        action="store_true",
        help="stop gracefully when standard input closes (for launchers on every OS: close the "
        "pipe to stop; the daemon also stops when its launcher dies)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="data folder: built models, ONNX exports, tokens (default $PIXELKILN_HOME, else "
        "~/.cache/pixelkiln)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="never touch the network (also HF_HUB_OFFLINE=1)"
    )
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=LEVELS, help="PixelKiln's own"
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="json: every log line one JSON object (access-log fields as keys); default text",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show the libraries' warnings, logs and progress bars (torch, diffusers, ...)",
    )
    parser.add_argument(
        "--event-loop",
        default="auto",
        choices=LOOPS,
        help="auto (default): uvloop where installed (Linux, macOS), else asyncio's own loop",
    )


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    sec = parser.add_argument_group(
        "security (see README 'Running on a studio network'; loopback needs none of these)"
    )
    sec.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="require 'authorization: Bearer <token>' on gRPC and WebSocket; one 'NAME SCOPE "
        "TOKEN' per line, scope generate or admin (pixelkiln token create NAME)",
    )
    sec.add_argument("--tls-cert", type=Path, default=None, metavar="PEM", help="serve TLS")
    sec.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="its key")
    sec.add_argument(
        "--tls-client-ca",
        type=Path,
        default=None,
        metavar="PEM",
        help="require client certificates signed by this CA (gRPC and WebSocket)",
    )
    sec.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without tokens and TLS (logs what is exposed)",
    )
    sec.add_argument(
        "--ws-allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin (scheme://host[:port], or scheme://host:* for any port) allowed "
        "to open the WebSocket carrier; handshakes carrying any other Origin are refused "
        "(repeatable)",
    )
    sec.add_argument(
        "--model-root",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="clients may load folders and files under DIR (repeatable); without one, clients "
        "may name only presets and models given at start ('--model-root .' for local use)",
    )
    sec.add_argument(
        "--allow-downloads",
        action="store_true",
        help="admin clients may make the daemon download models from a hub",
    )
    sec.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load pickle-based weights (.ckpt, .pt, .bin), which can run code when loaded",
    )
    sec.add_argument(
        "--max-request-megapixels",
        type=float,
        default=16.8,
        metavar="MP",
        help="width x height x num_images of one request, in millions of pixels (default "
        "16.8: four 2048x2048 or eight 1024x1024 images)",
    )
    sec.add_argument(
        "--max-jobs-per-client",
        type=int,
        default=16,
        metavar="N",
        help="generations one client may have queued or running, and finished results it "
        "has not read (default 16 of each)",
    )
    sec.add_argument(
        "--stream-backlog",
        type=int,
        default=64,
        metavar="N",
        help="events waiting to be sent on one stream before it ends with RESOURCE_EXHAUSTED; "
        "previews are dropped first (default 64)",
    )


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    speed = parser.add_argument_group(
        "speed and memory (options of the default model; see README 'Speed and memory')"
    )
    for flag, what in (
        ("channels-last", "channels_last memory format for the UNet and VAE"),
        ("fuse-qkv", "fused QKV projections (off with --lora)"),
    ):
        speed.add_argument(
            f"--{flag}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"{what} (default: on for CUDA, off elsewhere)",
        )
    speed.add_argument(
        "--sdpa",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="scaled-dot-product attention, AttnProcessor2_0 (default on)",
    )
    speed.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="auto (default): on the CPU, an SD-family model is exported to ONNX once (cached "
        "in --home) and served on ONNX Runtime when that measures faster here; torch; onnx",
    )
    speed.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the denoiser, warmed up at the native size when the model loads "
        "(other sizes recompile once)",
    )
    speed.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="with --compile: mode=reduce-overhead (CUDA graphs); CUDA only",
    )
    speed.add_argument(
        "--quantize",
        default="",
        metavar="MODE",
        help=f"quantize the denoiser with torchao: {', '.join(QUANTIZE_MODES)} "
        "(fp8 needs compute capability 8.9+)",
    )
    speed.add_argument(
        "--tiny-vae",
        default="",
        metavar="PATH",
        help="a TAESD-family AutoencoderTiny folder: decodes step previews",
    )
    speed.add_argument(
        "--tiny-vae-decode",
        action="store_true",
        help="also decode live-priority results with the tiny VAE (faster, softer)",
    )
    speed.add_argument(
        "--offload",
        default="",
        metavar="MODE",
        help=f"CPU offload for small cards: {', '.join(OFFLOAD_MODES)} (CUDA only)",
    )
    speed.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="NAME=PATH[:SCALE]",
        help="load a LoRA adapter into the default model (repeatable; scale default 1; "
        "requests choose scales with GenerateRequest.loras)",
    )
    speed.add_argument(
        "--vram-budget-gb",
        type=float,
        default=None,
        help="GPU memory the loaded models may hold; least recently used ones are unloaded "
        "to make room (default: the card's total minus max(2 GiB, 10%%))",
    )
    speed.add_argument(
        "--memory-budget-gb",
        type=float,
        default=None,
        help="the same budget on the CPU, over the models' weights (default: half the "
        "machine's memory, shared by the CPU runners)",
    )
