"""The ``pixelkiln`` command: serve, generate, replay, live, models, status.

Exit status: 0 done; 1 the daemon answered an error (printed as ``error: CODE: message``);
2 a mistake on the command line or in its files, or no daemon at --address (one line naming
the problem and what is allowed); 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from ._cli_args import EXIT_INTERRUPTED, EXIT_USAGE, Command
from ._cli_args import build_parser as _build_parser
from ._cli_live import cmd_live
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
    written,
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
from .client import Client, load_recipe, recipe_sidecar, resolve_address
from .errors import PixelKilnError, no_daemon, timeout_hint
from .events import Result

EXIT_DAEMON_ERROR = 1


def _output_paths(out: Path, count: int) -> list[Path]:
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(count)]


def _write_result(result: Result, out: Path) -> None:
    """stone.png, stone_normal.png, ...; with --count: stone_0.png, stone_0_normal.png, ...;
    with --atlas also stone_atlas.png and stone_atlas.json (TexturePacker JSON hash). A JPEG
    or WebP, which holds no recipe, gets its recipe beside it: stone.recipe.json."""
    paths = _output_paths(out, len(result.images))
    for image, path in zip(result.images, paths, strict=True):
        written(path, image.save)
        seam = f", seam ratio {image.seam['ratio']:.2f}" if image.seam else ""
        recipe = ""
        if path.suffix.lower() != ".png" and image.recipe_json:
            sidecar = written(recipe_sidecar(path), _text_writer(image.recipe_json))
            recipe = f"; recipe in {sidecar.name}"
        print(f"{path} ({image.width}x{image.height}, seed {image.seed}{seam}{recipe})")
        for kind, derived in image.maps.items():
            map_path = written(path.with_name(f"{path.stem}_{kind}{path.suffix}"), derived.save)
            print(f"{map_path} ({kind})")
    if result.atlas is not None:
        sheet = written(out.with_name(f"{out.stem}_atlas.png"), result.atlas.save)
        frames = dict(result.atlas_frames or {})
        frames.setdefault("meta", {})["image"] = sheet.name
        # Frames named after the files written beside the sheet (gems_0.png, ...), as a
        # packer names them; the daemon, which knows no file names, says frame_000, ...
        by_index = sorted(frames.get("frames", {}).items())
        if len(by_index) == len(paths):
            frames["frames"] = {p.name: f for p, (_, f) in zip(paths, by_index, strict=True)}
        text = json.dumps(frames, indent=2).encode()
        frames_path = out.with_name(f"{out.stem}_atlas.json")
        written(frames_path, lambda p: write_atomically(p, lambda f: f.write(text)))
        print(f"{sheet} + {frames_path.name} ({len(result.images)} frames)")


def _text_writer(text: str) -> Callable[[Path], Path]:
    data = text.encode()
    return lambda path: write_atomically(path, lambda f: f.write(data))


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
    maps = map_kinds(args.maps)
    _check_output_encoding(out, encoding, maps and f"--maps {maps}", args.transparent)
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


def _check_output_encoding(out: Path, encoding: str, maps: str, transparent: bool) -> None:
    """What the daemon refuses of an output encoding (assets.validate: maps need a lossless
    one, transparency one with alpha), said of -o before connecting."""
    if maps and encoding != "png":
        raise UsageError(
            f"-o/--output: derived maps ({maps}) need a lossless image; {out.name} "
            f"would be {encoding.upper()}: write a .png"
        )
    if transparent and encoding == "jpeg":
        raise UsageError(
            f"-o/--output: --transparent needs an alpha channel, which JPEG ({out.name}) has "
            "not: write a .png or .webp"
        )


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
    request = recipe.get("request", recipe)
    maps = request.get("maps") or ""
    maps = maps if isinstance(maps, str) else ",".join(maps)
    transparent = request.get("background") == "transparent"
    _check_output_encoding(out, encoding, maps and f"the recipe's {maps}", transparent)
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
            address = resolve_address(getattr(args, "address", None))
            print(
                f"{command}: error: no PixelKiln daemon at {address}: start one with "
                "`pixelkiln serve` or pass --address HOST:PORT",
                file=sys.stderr,
            )
            return EXIT_USAGE
        timeout, text = getattr(args, "timeout", None), str(err)
        if err.code is grpc.StatusCode.DEADLINE_EXCEEDED and timeout:
            # The library's hint names Client(timeout=...); here the flag set it.
            text = text.removesuffix(timeout_hint(timeout))
            text += f" (the --timeout of {timeout:g} s passed; raise it)"
        print(f"error: {text}", file=sys.stderr)
        return EXIT_DAEMON_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
