"""The ``pixelkiln`` command's arguments (argparse): one sub-parser per command; cli.py runs them.

Left out of the client wheel the Blender add-on bundles (like cli.py)."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from .client import DEFAULT_ADDRESS, default_address

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


class EnvAction(argparse.Action):
    """--token / --tls-ca: every Client of this command reads them from the environment
    variable named in ``const`` (PIXELKILN_TOKEN, PIXELKILN_TLS_CA), as a script's would."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        os.environ[str(self.const)] = str(values)
        setattr(namespace, self.dest, values)


class Parser(argparse.ArgumentParser):
    """argparse's mistakes in one line (no usage block), exit status 2 as usual. Arguments no
    flag takes are told by the subcommand's parser, with the flag meant or the prompt quoted."""

    subcommands: Mapping[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(  # type: ignore[override]  # one signature for typeshed's overloads
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            parser = getattr(self, "subcommands", {}).get(command, self)
            parser.error(unrecognized(parser, parsed, extras))
        return parsed


def unrecognized(parser: argparse.ArgumentParser, parsed: Any, extras: list[str]) -> str:
    """The message for arguments no flag took: with the flag each mistyped one likely meant
    or, for words beside a prompt, how to quote the prompt."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    flags = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
    if flags:
        known = sorted(parser._option_string_actions)
        meant = {f: difflib.get_close_matches(f, known, n=1) for f in flags}
        found = [(f, m[0]) for f, m in meant.items() if m]
        if len(found) == 1 and len(flags) == 1:
            message += f"; did you mean {found[0][1]}?"
        elif found:
            message += f"; did you mean {', '.join(f'{m} (for {f})' for f, m in found)}?"
    elif isinstance(getattr(parsed, "prompt", None), str):
        words = " ".join([parsed.prompt, *extras])
        message += f'; quote a prompt of several words: {parser.prog} "{words}"'
    return message


def package_version() -> str:
    """The installed package's version (pyproject.toml), else the module's."""
    try:
        return importlib.metadata.version("pixelkiln")
    except importlib.metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def build_parser(commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    """Every subcommand's flags; ``commands`` maps each name to the function that runs it."""
    parser = Parser(prog="pixelkiln", description="PixelKiln image daemon and client")
    parser.add_argument("--version", action="version", version=f"pixelkiln {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.subcommands = sub.choices

    def client_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--address",
            default=default_address(),
            help=f"daemon (default: $PIXELKILN_ADDRESS, else {DEFAULT_ADDRESS})",
        )
        p.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
        p.add_argument(
            "--token",
            action=EnvAction,
            const="PIXELKILN_TOKEN",
            help="the daemon's token (default: $PIXELKILN_TOKEN)",
        )
        p.add_argument(
            "--tls-ca",
            action=EnvAction,
            const="PIXELKILN_TLS_CA",
            metavar="PEM",
            help="connect with TLS, trusting this CA (default: $PIXELKILN_TLS_CA)",
        )
        return p

    def server_parser(name: str, help_text: str, module: str, adder: str) -> None:
        """A command run by the server package: its flags come from ``module``'s ``adder``
        where the server extras are installed (without them the command says what to install)."""
        p = sub.add_parser(name, help=help_text)
        with contextlib.suppress(ImportError):
            getattr(importlib.import_module(module), adder)(p)
        p.set_defaults(func=commands[name])

    server_parser("serve", "run the daemon", "pixelkiln_server.cli", "add_serve_arguments")
    server_parser(
        "token",
        "manage the daemon's tokens (serve --token-file)",
        "pixelkiln_server.auth",
        "add_token_arguments",
    )
    server_parser(
        "export-onnx",
        "export an SD-family model to ONNX (onnx backend)",
        "pixelkiln_server.onnx_export",
        "add_export_arguments",
    )

    gen = client_parser("generate", help_text="generate an image")
    gen.add_argument("prompt")
    gen.add_argument(
        "-o",
        "--output",
        help="output file (.png/.jpg/.webp); replaced if it exists. Default out.png, or "
        "out-2.png, out-3.png, ... so an earlier result is never replaced",
    )
    gen.add_argument("--model", default="", help="model name (default: the daemon's)")
    gen.add_argument("--negative", default="", help="negative prompt")
    gen.add_argument(
        "--size",
        type=int,
        default=0,
        help="width and height (--width or --height sets one side instead)",
    )
    gen.add_argument("--width", type=int, default=0)
    gen.add_argument("--height", type=int, default=0)
    gen.add_argument("--steps", type=int, default=0)
    gen.add_argument("--guidance", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--count", type=int, default=1, help="number of images")
    gen.add_argument("--init", help="init image for img2img")
    gen.add_argument("--strength", type=float, default=None, help="img2img strength (0, 1]")
    gen.add_argument("--mask", help="inpainting mask (white = repaint)")
    gen.add_argument(
        "--tile", default="none", choices=["none", "x", "y", "xy"], help="seamless tiling axes"
    )
    gen.add_argument("--maps", default="", help="derived maps: normal,height,roughness,ao")
    gen.add_argument("--normal-strength", type=float, default=None)
    gen.add_argument("--directx", action="store_true", help="DirectX (Y-) normal maps")
    gen.add_argument("--transparent", action="store_true", help="sprite with alpha (RGBA)")
    gen.add_argument("--trim", action="store_true", help="crop sprites to their content")
    gen.add_argument("--padding", type=int, default=0, help="padding around trimmed sprites")
    gen.add_argument("--atlas", action="store_true", help="pack --count images into a sheet")
    gen.set_defaults(func=commands["generate"])

    rep = client_parser("replay", help_text="reproduce an image from its recipe (.json or .png)")
    rep.add_argument("recipe")
    rep.add_argument(
        "-o",
        "--output",
        help="output file; replaced if it exists. Default replay.png, or replay-2.png, ...",
    )
    rep.add_argument("--init", help="the init image of an img2img recipe")
    rep.add_argument("--mask", help="the mask of an inpainting recipe")
    rep.set_defaults(func=commands["replay"])

    live = client_parser("live", help_text="live img2img: follow a file as it changes")
    live.add_argument("prompt")
    live.add_argument("--watch", required=True, help="image file to follow (re-sent on change)")
    live.add_argument("-o", "--output", default="live.png", help="where the newest frame goes")
    live.add_argument("--strength", type=float, default=0.5)
    live.add_argument("--seed", type=int, default=0)
    live.add_argument("--steps", type=int, default=0)
    live.add_argument("--size", type=int, default=0)
    live.add_argument("--model", default="")
    live.add_argument("--interval", type=float, default=0.05, help="poll interval in seconds")
    live.add_argument(
        "--frames",
        type=int,
        default=0,
        help="stop after N frames from the daemon, unchanged ones included (an unchanged "
        "--watch file is re-sent every 5 s and answered unchanged); 0: never",
    )
    live.add_argument(
        "--stream-batch",
        action="store_true",
        help="batch the denoising steps of consecutive frames (faster; a frame answers the "
        "input N - 1 inputs earlier at N denoising steps, steps x strength)",
    )
    live.add_argument(
        "--tiny-autoencoder", action="store_true", help="encode/decode with the tiny autoencoder"
    )
    live.add_argument(
        "--similar-skip",
        type=float,
        default=0.0,
        metavar="THRESHOLD",
        help="skip inputs differing from the last processed one by less than this mean "
        "fraction of full scale (0..1; 0: only exact repeats)",
    )
    live.add_argument(
        "--similar-skip-max",
        type=int,
        default=None,
        metavar="N",
        help="run at least every N+1th similar input (daemon default 10; 0: no limit)",
    )
    live.set_defaults(func=commands["live"])

    client_parser("models", help_text="list models").set_defaults(func=commands["models"])
    client_parser("status", help_text="daemon status").set_defaults(func=commands["status"])
    return parser
