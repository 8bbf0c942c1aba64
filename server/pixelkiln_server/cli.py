"""``pixelkiln serve``: run the daemon. Reached through the ``pixelkiln`` command."""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Callable

from . import eventloop
from .config import MIB, Limits, RayOptions, ServerConfig, default_home
from .errors import PixelKilnError
from .logsetup import configure_logging
from .model_options import ModelOptions
from .serve_args import add_serve_arguments

GIB = 1024**3


def model_options_from_args(args: argparse.Namespace) -> ModelOptions:
    """The default model's options; raises SystemExit naming the flag on a bad value."""
    from .backends.lora import parse_cli

    try:
        return ModelOptions(
            channels_last=args.channels_last,
            fuse_qkv=args.fuse_qkv,
            sdpa=args.sdpa,
            compile=args.compile,
            cuda_graphs=args.cuda_graphs,
            quantize=args.quantize,
            tiny_vae=args.tiny_vae,
            tiny_vae_decode=args.tiny_vae_decode,
            offload=args.offload,
            loras=tuple(parse_cli(item) for item in args.lora),
            runtime=args.runtime,
        )
    except PixelKilnError as exc:
        field = getattr(exc, "field", "")
        flag = f"--{field.replace('_', '-')}" if field else ""
        message = exc.message.removeprefix(f"{field}: ") if field else exc.message
        raise SystemExit(f"pixelkiln serve: {flag}: {message}" if flag else message) from None


def _budget(value: float | None, flag: str) -> int | None:
    if value is None:
        return None
    if value <= 0:
        raise SystemExit(f"pixelkiln serve: {flag}: must be positive; got {value}")
    return int(value * GIB)


# Numeric flags: the test a value must pass and how the limit reads in the error.
LIMITS: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("port", lambda v: 0 <= v <= 65535, "0..65535 (0: any free port)"),
    ("ws_port", lambda v: -1 <= v <= 65535, "-1..65535 (-1: off, 0: any free port)"),
    ("metrics_port", lambda v: 0 <= v <= 65535, "0..65535 (0: any free port)"),
    ("queue_size", lambda v: v >= 1, ">= 1"),
    ("max_message_mib", lambda v: v >= 1, ">= 1"),
    ("max_batch", lambda v: v >= 1, ">= 1"),
    ("batch_wait_ms", lambda v: v >= 0, ">= 0"),
    ("max_live_sessions", lambda v: v >= 1, ">= 1"),
    ("max_live_per_client", lambda v: v >= 1, ">= 1"),
    ("live_idle_timeout", lambda v: v > 0, "> 0"),
    ("ws_send_stall", lambda v: v >= 0, ">= 0 (0: never)"),
    ("grace", lambda v: v >= 0, ">= 0"),
    ("runner_hang_timeout", lambda v: v > 0, "> 0 seconds"),
    ("ray_replicas", lambda v: v >= 1, ">= 1"),
    ("ray_min_replicas", lambda v: v >= 0, ">= 0"),
    ("ray_max_replicas", lambda v: v >= 0, ">= 0 (0: no autoscaling)"),
    ("ray_gpus_per_replica", lambda v: v >= 0, ">= 0"),
    ("ray_cpus_per_replica", lambda v: v >= 0, ">= 0"),
    ("max_request_megapixels", lambda v: v > 0, "> 0"),
    ("max_jobs_per_client", lambda v: v >= 1, ">= 1"),
    ("stream_backlog", lambda v: v >= 1, ">= 1"),
)


def check_limits(args: argparse.Namespace) -> None:
    """Refuse a number out of range naming its flag, before anything starts."""
    for name, ok, allowed in LIMITS:
        value = getattr(args, name, None)
        if value is not None and not ok(value):
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"pixelkiln serve: {flag}: must be {allowed}; got {value}")


def ray_options(args: argparse.Namespace) -> RayOptions:
    low, high = getattr(args, "ray_min_replicas", 0), getattr(args, "ray_max_replicas", 0)
    if high and low > high:
        raise SystemExit(
            f"pixelkiln serve: --ray-min-replicas: must be <= --ray-max-replicas ({high}); "
            f"got {low}"
        )
    return RayOptions(
        address=getattr(args, "ray_address", "auto"),
        app=getattr(args, "ray_app", "pixelkiln-runners"),
        replicas=getattr(args, "ray_replicas", 1),
        min_replicas=low,
        max_replicas=high,
        gpus_per_replica=getattr(args, "ray_gpus_per_replica", 0.0),
        cpus_per_replica=getattr(args, "ray_cpus_per_replica", 1.0),
    )


def check_devices(devices: str) -> list[str]:
    """``--devices`` as a list (empty for auto); each entry a device name."""
    if devices == "auto":
        return []
    names = [d.strip() for d in devices.split(",")]
    bad = [d for d in names if not d or not d.startswith(("cpu", "cuda", "mps"))]
    if bad or not names:
        raise SystemExit(
            f"pixelkiln serve: --devices: must be auto or a comma-separated list of cpu, "
            f"cuda, cuda:N or mps; got {devices!r}"
        )
    return names


def check_device(device: str) -> None:
    """An explicit cuda/cuda:N/mps that this machine lacks is a mistake, said before loading."""
    if not device.startswith(("cuda", "mps")):
        return
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.partition(":")[2]
        if count == 0 or (index.isdigit() and int(index) >= count):
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise SystemExit(
                f"pixelkiln serve: --device: {device} is not available (torch "
                f"{torch.__version__} sees {seen}); use --device auto or cpu"
            )
    elif not torch.backends.mps.is_available():
        raise SystemExit(
            "pixelkiln serve: --device: mps is not available on this machine; use --device "
            "auto or cpu"
        )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    check_limits(args)
    extra = {}
    for item in args.add_model:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise SystemExit(f"--add-model wants NAME=SOURCE, got {item!r}")
        extra[name] = source
    options = model_options_from_args(args)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ws_port=None if args.ws_port < 0 else args.ws_port,
        metrics_port=getattr(args, "metrics_port", None),
        default_model=args.model,
        extra_models=extra,
        model_options={args.model: options} if options != ModelOptions() else {},
        vram_budget_bytes=_budget(args.vram_budget_gb, "--vram-budget-gb"),
        memory_budget_bytes=_budget(args.memory_budget_gb, "--memory-budget-gb"),
        device=args.device,
        dtype=args.dtype,
        runner=args.runner,
        devices=args.devices,
        ray=ray_options(args),
        runner_hang_timeout_s=args.runner_hang_timeout,
        queue_size=args.queue_size,
        max_message_bytes=args.max_message_mib * MIB,
        shutdown_grace_s=args.grace,
        home=args.home or default_home(),
        offline=args.offline,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        max_live_sessions=args.max_live_sessions,
        max_live_per_client=args.max_live_per_client,
        live_idle_timeout_s=args.live_idle_timeout,
        ws_send_stall_s=args.ws_send_stall,
        token_file=args.token_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        insecure=args.insecure,
        ws_allowed_origins=tuple(args.ws_allow_origin),
        model_roots=tuple(args.model_root),
        allow_downloads=args.allow_downloads,
        allow_pickle=args.allow_pickle,
        max_jobs_per_client=args.max_jobs_per_client,
        stream_backlog=args.stream_backlog,
        limits=Limits(max_request_pixels=int(args.max_request_megapixels * 1_000_000)),
    )
    from .services.model_policy import ModelPolicy

    try:
        ModelPolicy.from_config(config).check_registered()
    except PixelKilnError as exc:
        raise SystemExit(f"pixelkiln serve: {exc.message}") from None
    from .security import SecurityConfigError, preflight

    try:
        preflight(config)
    except SecurityConfigError as exc:
        raise SystemExit(f"pixelkiln serve: {exc}") from None
    return config


def run_serve(args: argparse.Namespace) -> int:
    configure_logging(
        args.log_level,
        verbose=getattr(args, "verbose", False),
        log_format=getattr(args, "log_format", "text"),
    )
    check_device(args.device)
    if args.runner == "ray" and importlib.util.find_spec("ray") is None:
        raise SystemExit(
            "pixelkiln serve: --runner ray needs Ray Serve: pip install 'pixelkiln[ray]' "
            "(ray[serve]) on this machine and on every machine of the Ray cluster"
        )
    for device in check_devices(args.devices):
        check_device(device)
    from .app import serve

    stdin = bool(getattr(args, "stop_on_stdin_close", False))
    name, run = eventloop.choose(getattr(args, "event_loop", "auto"))
    logging.getLogger(__name__).debug("event loop: %s", name)
    return run(serve(config_from_args(args), stop_on_stdin_close=stdin))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixelkiln-server", description="Run the daemon.")
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))
