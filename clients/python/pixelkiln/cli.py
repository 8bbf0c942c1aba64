"""The ``pixelkiln`` command: serve, generate, replay, live, models, status.

Exit status: 0 done; 1 the daemon answered an error (printed as ``error: CODE: message``);
2 a mistake on the command line or in its files, or no daemon at --address (one line naming
the problem and what is allowed); 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from ._cli_args import EXIT_USAGE, Command
from ._cli_args import build_parser as _build_parser
from ._cli_parts import (
    ProgressBar,
    UsageError,
    format_table,
    free_name,
    input_image,
    map_kinds,
    output_path,
    positive,
    unsigned,
)
from ._files import write_atomically
from ._replay import (
    REPLAY_INPUTS,
    ReplayInputWarning,
    differing_inputs,
    differs_note,
    image_index,
    missing_inputs,
    request_from_recipe,
)
from .client import DEFAULT_ADDRESS, Client, load_recipe
from .errors import PixelKilnError, no_daemon
from .events import Result

EXIT_DAEMON_ERROR = 1
EXIT_INTERRUPTED = 130


def _output_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(count)]


def _write_result(result: Result, out: Path) -> None:
    """stone.png, stone_normal.png, ...; with --count: stone_0.png, stone_0_normal.png, ...;
    with --atlas also stone_atlas.png and stone_atlas.json (TexturePacker JSON hash)."""
    paths = _output_paths(out, len(result.images))
    for image, path in zip(result.images, paths, strict=True):
        _written(path, image.save)
        seam = f", seam ratio {image.seam['ratio']:.2f}" if image.seam else ""
        print(f"{path} ({image.width}x{image.height}, seed {image.seed}{seam})")
        for kind, derived in image.maps.items():
            map_path = _written(path.with_name(f"{path.stem}_{kind}{path.suffix}"), derived.save)
            print(f"{map_path} ({kind})")
    if result.atlas is not None:
        sheet = _written(out.with_name(f"{out.stem}_atlas.png"), result.atlas.save)
        frames = dict(result.atlas_frames or {})
        frames.setdefault("meta", {})["image"] = sheet.name
        # Frames named after the files written beside the sheet (gems_0.png, ...), as a
        # packer names them; the daemon, which knows no file names, says frame_000, ...
        by_index = sorted(frames.get("frames", {}).items())
        if len(by_index) == len(paths):
            frames["frames"] = {p.name: f for p, (_, f) in zip(paths, by_index, strict=True)}
        text = json.dumps(frames, indent=2).encode()
        frames_path = out.with_name(f"{out.stem}_atlas.json")
        _written(frames_path, lambda p: write_atomically(p, lambda f: f.write(text)))
        print(f"{sheet} + {frames_path.name} ({len(result.images)} frames)")


def _written(path: Path, save: Callable[[Path], Path]) -> Path:
    """``save(path)``; a file that cannot be written is one line naming it (the file that was
    there, if any, is untouched), not a traceback."""
    try:
        return save(path)
    except OSError as exc:
        raise UsageError(f"-o/--output: cannot write {path}: {exc.strerror or exc}") from None


def cmd_generate(args: argparse.Namespace) -> int:
    out, encoding = output_path("-o/--output", args.output or free_name("out"))
    positive("--timeout", args.timeout)
    if args.count < 1:
        raise UsageError(f"--count: must be 1 or more; got {args.count}")
    sizes = ("--size", "--width", "--height", "--steps", "--count", "--padding")
    unsigned([(flag, getattr(args, flag[2:])) for flag in sizes])
    unsigned([("--seed", args.seed)], bits=64)
    if args.trim and not args.transparent:
        raise UsageError(
            "--trim: crops a transparent sprite to its content, so it needs --transparent"
        )
    if args.padding and not args.trim:
        raise UsageError("--padding: pads the trimmed sprite, so it needs --trim")
    options: dict[str, Any] = {
        "model": args.model,
        "negative_prompt": args.negative,
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "seed": args.seed,
        "num_images": args.count,
        "strength": args.strength,
        "tiling": args.tile,
        "transparent": args.transparent,
        "trim": args.trim,
        "padding": args.padding,
        "maps": map_kinds(args.maps),
        "atlas": args.atlas,
        "normal_strength": args.normal_strength,
        "normal_convention": "directx" if args.directx else "opengl",
    }
    if args.size:
        options["size"] = args.size
    if args.width:
        options["width"] = args.width
    if args.height:
        options["height"] = args.height
    if args.init:
        options["init_image"] = input_image("--init", args.init)
    if args.mask:
        options["mask"] = input_image("--mask", args.mask)
    options["output_encoding"] = encoding
    bar = ProgressBar()
    try:
        with Client(args.address, timeout=args.timeout) as client:
            noted = bool(args.size or args.width or args.height) and _note_size(client, args)
            result = client.generate(args.prompt, on_event=bar, **options)
    finally:
        bar.close()
    for warning in result.warnings:
        if not (noted and warning.startswith("size:")):  # said before it ran
            print(f"warning: {warning}", file=sys.stderr)
    _write_result(result, out)
    return 0


def _note_size(client: Client, args: argparse.Namespace) -> bool:
    """Say what to expect when the size asked for is above the model's trained size; True
    when it said so."""
    catalogue = client.catalogue()
    name = args.model or catalogue.default_model
    info = next((m for m in catalogue.models if m.name == name), None)
    width, height = args.width or args.size, args.height or args.size
    if info is None or not info.native_width or not info.native_height:
        return False
    if any(side and side % 8 for side in (width, height)):
        return False  # no model takes it: the daemon's refusal says why, not a note first
    if (width or 0) > info.native_width or (height or 0) > info.native_height:
        asked = f"{width or info.native_width}x{height or info.native_height}"
        print(
            f"note: {name} was trained at {info.native_width}x{info.native_height}; at {asked} "
            f"expect its detail at the {info.native_width} px scale, repeated, rather than a "
            f"larger picture (--size {info.native_width} makes what it was trained for)",
            file=sys.stderr,
        )
        return True
    return False


def cmd_replay(args: argparse.Namespace) -> int:
    out, encoding = output_path("-o/--output", args.output or free_name("replay"))
    positive("--timeout", args.timeout)
    source = Path(args.recipe)
    if not source.is_file():
        raise UsageError(
            f"{args.recipe} does not exist; give a PNG written by PixelKiln or its .json recipe"
        )
    try:
        recipe = load_recipe(source)
        request_from_recipe(recipe)  # checked before connecting: a bad field is named here
        image_index(recipe)
    except (ValueError, OSError) as exc:
        message = str(exc)
        raise UsageError(message if str(source) in message else f"{source}: {message}") from None
    overrides: dict[str, Any] = {"output_encoding": encoding}
    flags = {
        "init_image": ("--init", args.init, "an init image"),
        "mask": ("--mask", args.mask, "a mask"),
    }
    for key, _digest in REPLAY_INPUTS:
        flag, value, _ = flags[key]
        if value:
            overrides[key] = path = input_image(flag, value)
            if differing_inputs(recipe, {key: path.read_bytes()}):
                print(f"note: {differs_note(f'{flag} {value}')}", file=sys.stderr)
    missing = missing_inputs(recipe, overrides)
    if missing:
        wanted = " and ".join(flags[key][2] for key in missing)
        again = " and ".join(flags[key][0] for key in missing)
        them = "them" if len(missing) > 1 else "it"
        raise UsageError(f"{source} was made with {wanted}; pass {them} again with {again}")
    bar = ProgressBar()
    try:
        with Client(args.address, timeout=args.timeout) as client, warnings.catch_warnings():
            warnings.simplefilter("ignore", ReplayInputWarning)  # the note above said it
            result = client.replay(recipe, on_event=bar, **overrides)
    finally:
        bar.close()
    _write_result(result, out)
    return 0


# The daemon ends a live session silent for --live-idle-timeout (30 s by default): while the
# watched file does not change, the CLI re-sends it this often (an unchanged input is free).
LIVE_KEEPALIVE_S = 5.0
# How often a still input is sent again while stream batch holds the frame of its last change.
FLUSH_EVERY_S = 0.1


def cmd_live(args: argparse.Namespace) -> int:
    """Re-send --watch whenever it changes (and every LIVE_KEEPALIVE_S while it does not);
    write the newest frame to -o (atomically)."""
    watch = input_image("--watch", args.watch)
    out, encoding = output_path("-o/--output", args.output)
    positive("--interval", args.interval)
    positive("--frames", args.frames, zero_ok=True)
    unsigned([("--steps", args.steps), ("--size", args.size)])
    unsigned([("--seed", args.seed)], bits=64)
    unsigned([("--similar-skip-max", args.similar_skip_max)])
    if not 0.0 <= args.similar_skip <= 1.0:
        raise UsageError(f"--similar-skip: must be between 0 and 1; got {args.similar_skip:g}")
    settings: dict[str, Any] = {
        "prompt": args.prompt,
        "strength": args.strength,
        "seed": args.seed,
        "output_encoding": encoding,
    }
    if args.stream_batch:
        settings["stream_batch"] = True
    if args.tiny_autoencoder:
        settings["tiny_autoencoder"] = True
    if args.similar_skip:
        settings["similar_skip_threshold"] = args.similar_skip
    if args.similar_skip_max is not None:
        settings["similar_skip_max"] = args.similar_skip_max
    if args.steps:
        settings["steps"] = args.steps
    if args.size:
        settings["size"] = args.size
    if args.model:
        settings["model"] = args.model
    written = 0
    with Client(args.address) as client, client.live(**settings) as session:
        stop = threading.Event()
        # Stream batch answers N - 1 inputs late (N denoising steps) and sends no frame for an
        # input it holds: after a change the same input is sent again at each look (the newest
        # waiting input replaces the one before, so each frame's run takes one) until the frame
        # answering the change has come.
        latest = {"seq": 0, "answered": 0}

        def watcher() -> None:
            last, data, sent_at = None, b"", 0.0
            while not stop.is_set():
                try:
                    info = watch.stat()
                    stamp = info.st_mtime_ns, info.st_size
                    if stamp != last:
                        data = watch.read_bytes()
                        last = stamp
                        latest["seq"] = session.send(data)
                        sent_at = time.monotonic()
                    elif (
                        args.stream_batch
                        and latest["answered"] < latest["seq"]
                        and time.monotonic() - sent_at >= FLUSH_EVERY_S
                    ):
                        session.send(data)
                        sent_at = time.monotonic()
                    elif last is not None and time.monotonic() - sent_at >= LIVE_KEEPALIVE_S:
                        session.send(data)  # the same input: the daemon answers "unchanged"
                        sent_at = time.monotonic()
                except OSError:
                    pass  # being replaced (or gone for a moment): look again next time
                stop.wait(args.interval)

        thread = threading.Thread(target=watcher, daemon=True)
        thread.start()
        interrupted = threading.Event()

        def on_interrupt(signum: int, frame: Any) -> None:
            # Ctrl+C ends the stream from another thread, and the loop below then ends as the
            # stream does: a KeyboardInterrupt raised inside gRPC's blocking iterator could
            # stop it while it holds its lock, and exiting then hung (seen under load).
            interrupted.set()
            signal.signal(signal.SIGINT, previous)  # a second Ctrl+C interrupts at once
            threading.Thread(target=session.cancel, daemon=True).start()

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_interrupt) if main else None
        try:
            for frame in session:
                if frame.image is not None:
                    latest["answered"] = max(latest["answered"], frame.seq)
                    # Each frame replaces the last: no flush to disk.
                    _written(out, functools.partial(frame.image.save, durable=False))
                    written += 1
                    ms = frame.timings["total_ms"]
                    print(f"frame {frame.seq}: {out} ({ms:.0f} ms, {frame.skipped} skipped)")
                if interrupted.is_set() or (args.frames and written >= args.frames):
                    break
        finally:
            stop.set()
            if main:
                signal.signal(signal.SIGINT, previous)
    return EXIT_INTERRUPTED if interrupted.is_set() else 0


def cmd_models(args: argparse.Namespace) -> int:
    positive("--timeout", args.timeout)
    with Client(args.address, timeout=args.timeout) as client:
        catalogue = client.catalogue()
    rows = [
        [
            "*" if m.name == catalogue.default_model else "",
            m.name,
            m.family,
            f"{m.native_width}x{m.native_height}",
            str(m.default_steps),
            "yes" if m.loaded else "no",
            "yes" if m.available_locally else "no",
            m.source,
        ]
        for m in catalogue.models
    ]
    header = ["", "name", "family", "native", "steps", "loaded", "local", "source"]
    for line in format_table(header, rows, right={4}):
        print(line)
    print(f"* default model: {catalogue.default_model or '-'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    positive("--timeout", args.timeout)
    with Client(args.address, timeout=args.timeout) as client:
        s = client.status()
    print(f"version       {s.version}")
    print(f"ready         {'yes' if s.ready else 'no'}")
    print(f"device        {s.device} ({s.dtype})")
    print(f"weights       {s.memory_used_bytes / 2**20:.1f} MiB (the loaded models)")
    print(f"models        {', '.join(s.loaded_models) or '-'} (default {s.default_model})")
    for m in s.models:
        if m.options.get("runtime"):  # torch, or onnx and why (serve --runtime)
            print(f"runtime       {m.name}: {m.options['runtime']}")
    print(f"queue         {s.queue_depth}/{s.queue_capacity} waiting, {s.running} running")
    for r in s.runners:
        died = f", last stopped: {r.last_error}" if r.last_error else ""
        print(
            f"runner        {r.name} {r.state} on {r.device} (pid {r.pid or '-'}, "
            f"{r.running} running, {r.jobs_run} run, {r.restarts} restarts{died}; "
            f"models {', '.join(r.loaded_models) or '-'})"
        )
    return 0


def _server_part(command: str, module: str, name: str) -> Any:
    """``name`` from the daemon's package, or a usage error that says what is missing: the
    daemon needs Python 3.11+ (the client runs on 3.10, e.g. in Blender 3.x) and the
    server extras."""
    if sys.version_info < (3, 11):
        found = ".".join(str(part) for part in sys.version_info[:3])
        raise UsageError(
            f"{command} runs the daemon's side, which needs Python 3.11 or newer (this is "
            f"{found}); the client commands (generate, live, models, status) work here"
        )
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise UsageError(
            f"{command} needs the server extras: pip install 'pixelkiln[server]' ({exc})"
        ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    return _one_line_exit(_server_part("serve", "pixelkiln_server.cli", "run_serve"), args)


def cmd_token(args: argparse.Namespace) -> int:
    run_token = _server_part("token", "pixelkiln_server.auth", "run_token")
    try:
        return run_token(args)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise


def cmd_export_onnx(args: argparse.Namespace) -> int:
    run_export = _server_part("export-onnx", "pixelkiln_server.onnx_export", "run_export")
    out = Path(args.dir)
    for folder in (out, *out.parents):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"dir: {folder} is a file; give a new or empty folder for {out}")
    return _one_line_exit(run_export, args)


def _one_line_exit(run: Any, args: argparse.Namespace) -> int:
    """The server side refuses a bad flag with SystemExit("message"): a usage mistake."""
    try:
        return int(run(args))
    except SystemExit as exc:
        if isinstance(exc.code, str):
            raise UsageError(exc.code.removeprefix("pixelkiln serve: ")) from None
        raise


COMMANDS: dict[str, Command] = {
    "serve": cmd_serve,
    "token": cmd_token,
    "export-onnx": cmd_export_onnx,
    "generate": cmd_generate,
    "replay": cmd_replay,
    "live": cmd_live,
    "models": cmd_models,
    "status": cmd_status,
}


def build_parser() -> argparse.ArgumentParser:
    return _build_parser(COMMANDS)


def _tolerant_output() -> None:
    """Text the console cannot show is escaped, not a crash: on Windows a stdout redirected to
    a file uses the ANSI code page (cp1252), and a prompt in another script raised
    UnicodeEncodeError after the image was written."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _tolerant_output()
    args = build_parser().parse_args(argv)
    command = f"pixelkiln {args.command}"
    try:
        return int(args.func(args))
    except UsageError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except PixelKilnError as err:
        if no_daemon(err):
            address = getattr(args, "address", DEFAULT_ADDRESS)
            print(
                f"{command}: error: no PixelKiln daemon at {address}: start one with "
                "`pixelkiln serve` or pass --address HOST:PORT",
                file=sys.stderr,
            )
            return EXIT_USAGE
        timeout, hint = getattr(args, "timeout", None), ""
        if err.code is grpc.StatusCode.DEADLINE_EXCEEDED and timeout:
            hint = f" (the --timeout of {timeout:g} s passed; raise it)"
        print(f"error: {err}{hint}", file=sys.stderr)
        return EXIT_DAEMON_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
