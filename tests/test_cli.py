"""The `pixelkiln` command against a daemon in a child process, and graceful shutdown."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelkiln import Client, PixelKilnError, Progress

from .conftest import ROOT, decode, png_bytes, start_served


def pixelkiln(
    *args: str, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixelkiln.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_generate_writes_a_valid_png_with_recipe(served: str, tmp_path: Path) -> None:
    out = tmp_path / "stone.png"
    proc = pixelkiln(
        "generate",
        "mossy cobblestone",
        "-o",
        str(out),
        "--seed",
        "7",
        "--steps",
        "2",
        "--address",
        served,
    )
    assert proc.returncode == 0, proc.stderr
    assert "step 2/2" in proc.stderr  # the progress bar, in plain lines: stderr is a pipe
    assert "\r" not in proc.stderr
    assert f"{out} (64x64, seed 7)" in proc.stdout
    with Image.open(out) as img:
        img.load()
        assert img.format == "PNG" and img.size == (64, 64)
        recipe = json.loads(img.text["pixelkiln"])
    assert recipe["request"]["seed"] == 7 and recipe["request"]["prompt"] == "mossy cobblestone"
    assert not list(tmp_path.glob(".*.part"))  # written through a temporary file

    # Replay from the PNG gives the same bytes.
    again = tmp_path / "again.png"
    proc = pixelkiln("replay", str(out), "-o", str(again), "--address", served)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out)))


def test_generate_img2img_and_count(served: str, tmp_path: Path) -> None:
    init = tmp_path / "sketch.png"
    init.write_bytes(png_bytes(np.full((64, 64, 3), 90, np.uint8)))
    out = tmp_path / "edit.png"
    proc = pixelkiln(
        "generate",
        "bricks",
        "--init",
        str(init),
        "--strength",
        "0.5",
        "--steps",
        "2",
        "--count",
        "2",
        "--seed",
        "1",
        "-o",
        str(out),
        "--address",
        served,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "edit_0.png").is_file() and (tmp_path / "edit_1.png").is_file()


def test_default_outputs_never_replace_an_earlier_result(served: str, tmp_path: Path) -> None:
    """Without -o, a second run writes out-2.png (a whole group's names are checked: out_0.png
    from --count takes the name out too); -o names a file that is replaced on purpose."""
    common = ["--size", "64", "--steps", "1", "--address", served]
    first = pixelkiln("generate", "red brick wall", "--seed", "1", *common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "out.png").read_bytes()
    second = pixelkiln("generate", "red brick wall", "--seed", "2", *common, cwd=tmp_path)
    assert second.stdout.startswith("out-2.png (64x64, seed 2"), second.stdout
    third = pixelkiln("generate", "x", "--count", "2", *common, cwd=tmp_path)
    assert third.stdout.startswith("out-3_0.png"), third.stdout
    assert (tmp_path / "out.png").read_bytes() == before
    again = pixelkiln("replay", "out.png", *common[4:], cwd=tmp_path)
    assert again.stdout.startswith("replay.png"), again.stderr
    again = pixelkiln("replay", "out.png", *common[4:], cwd=tmp_path)
    assert again.stdout.startswith("replay-2.png"), again.stderr
    assert (tmp_path / "replay-2.png").read_bytes() == before  # replays bit for bit
    named = pixelkiln("generate", "x", "-o", "out.png", *common, cwd=tmp_path)
    assert named.returncode == 0 and (tmp_path / "out.png").read_bytes() != before


def test_daemon_errors_print_code_and_message_with_status_1(served: str, tmp_path: Path) -> None:
    proc = pixelkiln(
        "generate", "x", "--size", "100", "-o", str(tmp_path / "x.png"), "--address", served
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: INVALID_ARGUMENT: width:") and "multiple of 8" in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_models_and_status_commands(served: str) -> None:
    models = pixelkiln("models", "--address", served)
    assert models.returncode == 0
    lines = models.stdout.splitlines()
    assert lines[-1] == "* default model: tiny-random"
    header, rows = lines[0], lines[1:-1]
    assert "tiny-random" in models.stdout and "sd-turbo" in models.stdout
    # Aligned: every column starts where its header does, whatever the names' lengths.
    for column in ("name", "family", "native", "loaded", "local", "source"):
        start = header.index(column)
        for row in rows:
            assert row[start - 1] == " " and row[start] != " ", (column, row)
    marked = [row for row in rows if row.startswith("*")]
    assert len(marked) == 1 and marked[0].split()[1] == "tiny-random"
    status = pixelkiln("status", "--address", served)
    assert status.returncode == 0
    # serve's runner is a child process: its own pid, ready, holding the served model.
    (runner,) = [line for line in status.stdout.splitlines() if line.startswith("runner")]
    assert re.search(
        r"runner +cpu#0 ready on cpu \(pid \d+, 0 running, \d+ run, 0 restarts;", runner
    )
    assert runner.endswith("models tiny-random)")
    assert "ready         yes" in status.stdout and "cpu" in status.stdout
    # serve's default --runtime auto: measured (or cached) at load, and said which and why.
    (runtime,) = [line for line in status.stdout.splitlines() if line.startswith("runtime")]
    assert re.fullmatch(r"runtime +tiny-random: (onnx|torch) \(measured: .*\)", runtime)


def test_unreachable_daemon_is_a_clear_error() -> None:
    proc = pixelkiln("status", "--address", "127.0.0.1:1", "--timeout", "2")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "pixelkiln status: error: no PixelKiln daemon at 127.0.0.1:1: start one with "
        "`pixelkiln serve` or pass --address HOST:PORT"
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_in_flight_work(sig: signal.Signals) -> None:
    proc, address = start_served("--grace", "30")
    outcome: dict[str, object] = {}
    started = threading.Event()

    def run() -> None:
        with Client(address, timeout=60) as client:
            try:
                outcome["result"] = client.generate(
                    "finish me",
                    seed=1,
                    steps=8,  # in flight when the stop arrives; more steps only wait longer
                    size=64,
                    on_event=lambda e: started.set() if isinstance(e, Progress) else None,
                )
            except PixelKilnError as err:
                outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60)
    proc.send_signal(sig)
    thread.join(60)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "result" in outcome, outcome  # in-flight work finished within the grace period
    assert b"shutting down" in output


def test_shutdown_grace_cancels_what_does_not_finish() -> None:
    proc, address = start_served("--grace", "0.2")
    errors: list[PixelKilnError] = []
    started = threading.Event()

    def run() -> None:
        with Client(address, timeout=60) as client:
            try:
                client.generate(
                    "too long",
                    seed=1,
                    steps=50,
                    size=512,
                    on_event=lambda e: started.set() if isinstance(e, Progress) else None,
                )
            except PixelKilnError as err:
                errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60)
    proc.send_signal(signal.SIGTERM)
    thread.join(30)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert errors and errors[0].code.name in ("CANCELLED", "UNAVAILABLE")


# --- user mistakes: one line naming the problem and what is allowed, exit status 2 -------------


def _files(tmp_path: Path) -> dict[str, str]:
    plain = tmp_path / "plain.png"
    plain.write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo, format="JPEG")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    other = tmp_path / "other.json"
    other.write_text('{"name": "not a recipe"}')
    # Recipes are data from anywhere (a PNG someone shared): none may name a file to read.
    stolen = tmp_path / "stolen.json"
    stolen.write_text(json.dumps({"request": {"prompt": "x", "init_image": str(text)}}))
    deep = tmp_path / "deep.json"
    deep.write_text('{"request": {"prompt": "x", "loras": ' + "[" * 100000 + "]" * 100000 + "}}")
    typed = tmp_path / "typed.json"
    typed.write_text(json.dumps({"request": {"prompt": "x", "width": "64"}}))
    folder = tmp_path / "folder.png"
    folder.mkdir()
    seeded = tmp_path / "seeded.json"
    seeded.write_text(json.dumps({"request": {"prompt": "x", "seed": "x"}}))
    return {
        "PLAIN": str(plain),
        "PHOTO": str(photo),
        "TEXT": str(text),
        "OTHER": str(other),
        "MISSING": str(tmp_path / "missing.png"),
        "NODIR": str(tmp_path / "no" / "such" / "out.png"),
        "TMP": str(tmp_path),
        "STOLEN": str(stolen),
        "DEEP": str(deep),
        "TYPED": str(typed),
        "FOLDER": str(folder),
        "SEEDED": str(seeded),
    }


MISTAKES = [
    (["generate", "x", "--init", "MISSING"], "--init: MISSING does not exist; give a PNG"),
    (["generate", "x", "--mask", "MISSING"], "--mask: MISSING does not exist"),
    (["generate", "x", "--init", "TMP"], "--init: TMP is a folder, not a file"),
    (
        ["generate", "x", "--init", "TEXT"],
        "--init: TEXT is not a PNG, JPEG, WebP, GIF or BMP image",
    ),
    (
        ["generate", "x", "--maps", "normal,normals"],
        "--maps: unknown kind 'normals'; allowed: normal, height, roughness, ao",
    ),
    (
        ["generate", "x", "-o", "out.gif"],
        "-o/--output: cannot write .gif files (out.gif); allowed: .png, .jpg, .jpeg, .webp",
    ),
    (["generate", "x", "-o", "NODIR"], "-o/--output: folder"),
    (["generate", "x", "--timeout", "0"], "--timeout: must be > 0; got 0"),
    (["generate", "x", "--padding", "4"], "--padding: pads the trimmed sprite, so it needs --trim"),
    (["generate", "x", "--trim"], "--trim: crops a transparent sprite to its content, so it needs"),
    (["generate", "x", "--padding", "-1"], "--padding: must be 0 or more; got -1"),
    (["generate", "x", "--seed", "-5"], "--seed: must be 0 or more; got -5"),
    (["generate", "x", "--size", "5000000000"], "--size: must be below 4294967296; got 5000000000"),
    (["live", "x", "--watch", "PLAIN", "--seed", "-1"], "--seed: must be 0 or more"),
    (["generate", "x", "--tile", "diagonal"], "argument --tile: invalid choice: 'diagonal'"),
    (["generate", "x", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
    (["replay", "MISSING"], "MISSING does not exist; give a PNG written by PixelKiln"),
    (["replay", "PLAIN"], "PLAIN carries no PixelKiln recipe"),
    (["replay", "PHOTO"], "PHOTO is a JPEG image, which carries no recipe"),
    (["replay", "TEXT"], "TEXT is not a recipe: not JSON"),
    (["replay", "OTHER"], "OTHER is not a recipe: a JSON object with a 'request'"),
    (["replay", "PLAIN", "-o", "x.bmp"], "-o/--output: cannot write .bmp files"),
    (["replay", "STOLEN"], "STOLEN: recipe field 'init_image': a recipe carries no images"),
    (["replay", "DEEP"], "DEEP is not a recipe: its JSON is nested too deeply"),
    (["replay", "TYPED"], "TYPED: recipe field 'width': '64' is not usable"),
    (
        ["replay", "SEEDED"],
        "SEEDED: recipe field 'seed': 'x' is not usable (seed: expected an int, got str 'x')",
    ),
    (["generate", "x", "--count", "0"], "--count: must be 1 or more; got 0"),
    (["generate", "x", "--count", "-1"], "--count: must be 1 or more; got -1"),
    (
        ["generate", "x", "--sedd", "5"],
        "pixelkiln generate: error: unrecognized arguments: --sedd 5; did you mean --seed?",
    ),
    (
        ["generate", "red", "brick", "wall"],
        "unrecognized arguments: brick wall; quote a prompt of several words: "
        'pixelkiln generate "red brick wall"',
    ),
    (
        ["models", "--adress", "x"],
        "pixelkiln models: error: unrecognized arguments: --adress x; did you mean --address?",
    ),
    (["generate", "x", "-o", "FOLDER"], "-o/--output: FOLDER is a folder; give a file name in it"),
    (["live", "x", "--watch", "MISSING"], "--watch: MISSING does not exist"),
    (["live", "x", "--watch", "PLAIN", "--interval", "0"], "--interval: must be > 0"),
    (["live", "x", "--watch", "PLAIN", "--frames", "-1"], "--frames: must be >= 0; got -1"),
    (["live", "x"], "the following arguments are required: --watch"),
    (["models", "--timeout", "-1"], "--timeout: must be > 0; got -1"),
    (["serve", "--log-level", "loud"], "argument --log-level: invalid choice: 'LOUD'"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    (["export-onnx", "tiny-random", "TEXT"], "dir: TEXT is a file; give a new or empty folder"),
]


@pytest.mark.parametrize(("argv", "expected"), MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_user_mistakes_end_in_one_line_and_status_2(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixelkiln.cli import main

    files = _files(tmp_path)
    argv = [files.get(a, a) for a in argv]
    for name, path in files.items():
        expected = expected.replace(name, path)
    with_address = argv[0] in ("generate", "replay", "live", "models")
    try:
        status = main([*argv, *(["--address", "127.0.0.1:1"] if with_address else [])])
    except SystemExit as exc:  # argparse's own mistakes
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    assert status == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0]
    assert lines[0].startswith(f"pixelkiln{' ' + argv[0] if argv[0] != 'nonsense' else ''}")
    assert captured.out == ""


@pytest.mark.parametrize(
    "command", [["serve"], ["token", "create", "x"], ["export-onnx", "m", "d"]]
)
def test_the_daemons_commands_name_the_python_they_need(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On 3.10 (Blender 3.x's Python) the client runs but the daemon's side does not import;
    that once read as missing server extras, which reinstalling does not fix."""
    from pixelkiln.cli import main

    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    assert main(command) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"pixelkiln {command[0]}: error: {command[0]} runs the daemon's side")
    assert "Python 3.11 or newer (this is 3.10.13)" in line


def test_mistakes_in_a_real_process_print_no_traceback(tmp_path: Path) -> None:
    proc = pixelkiln("generate", "gem", "--init", str(tmp_path / "base.png"), "--maps", "normals")
    assert proc.returncode == 2
    assert proc.stderr == (
        "pixelkiln generate: error: --maps: unknown kind 'normals'; allowed: normal, height, "
        "roughness, ao\n"
    )
    proc = pixelkiln("serve", "--add-model", "nosource", "--port", "0")
    assert proc.returncode == 2
    assert proc.stderr == "pixelkiln serve: error: --add-model wants NAME=SOURCE, got 'nosource'\n"
    proc = pixelkiln("live", "x", "--watch", str(tmp_path / "sketch.png"), timeout=60)
    assert proc.returncode == 2  # at once, instead of waiting for the file to appear
    assert "--watch:" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_that_cannot_be_written_is_named_and_nothing_is_left(
    served: str, tmp_path: Path
) -> None:
    (tmp_path / "wall_normal.png").mkdir()  # the map's name is taken by a folder
    proc = pixelkiln(
        "generate", "wall", "-o", str(tmp_path / "wall.png"), "--maps", "normal",
        "--size", "64", "--steps", "1", "--address", served,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == (  # after the progress lines
        f"pixelkiln generate: error: -o/--output: cannot write {tmp_path / 'wall_normal.png'}: "
        "Is a directory"
    )
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "wall.png").is_file()  # what could be written was
    assert not list(tmp_path.glob(".*.part"))


def test_replay_of_an_img2img_recipe_asks_for_its_init_image(served: str, tmp_path: Path) -> None:
    init = tmp_path / "sketch.png"
    init.write_bytes(png_bytes(np.full((64, 64, 3), 90, np.uint8)))
    out = tmp_path / "edit.png"
    made = pixelkiln(
        "generate", "bricks", "--init", str(init), "--steps", "2", "-o", str(out),
        "--address", served,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = pixelkiln("replay", str(out), "-o", str(tmp_path / "again.png"), "--address", served)
    assert proc.returncode == 2
    what = "was made with an init image; pass it again with --init"
    assert proc.stderr == f"pixelkiln replay: error: {out} {what}\n"
    proc = pixelkiln(
        "replay", str(out), "--init", str(init), "-o", str(tmp_path / "again.webp"),
        "--address", served,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "note:" not in proc.stderr
    with Image.open(tmp_path / "again.webp") as img:
        assert img.format == "WEBP"  # the encoding follows -o
    other = tmp_path / "other.png"
    other.write_bytes(png_bytes(np.full((64, 64, 3), 30, np.uint8)))
    proc = pixelkiln(
        "replay", str(out), "--init", str(other), "-o", str(tmp_path / "other_out.png"),
        "--address", served,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"note: --init {other} is not the file this recipe was made with" in proc.stderr
    assert "ReplayInputWarning" not in proc.stderr  # the library's warning: not said twice
    with Client(served) as client, pytest.raises(ValueError) as info:
        client.replay(out)  # the library says what the daemon would have blamed on strength
    assert "made with init_image; pass init_image= again" in str(info.value)


def test_progress_is_plain_lines_when_not_a_terminal() -> None:
    import io

    from pixelkiln import Accepted, Event, Queued, Result
    from pixelkiln._cli_parts import ProgressBar

    events: list[Event] = [Accepted("r1", "", "m", 5, 64, 64, 8, 1.0, 1)]
    events += [Queued("r1", 2, 3), Queued("r1", 0, 1)]
    events += [Progress("r1", step, 8, 10.0 * step) for step in range(1, 9)]
    events.append(Result("r1", [], "", {"total_ms": 90.0}))
    plain, tty = io.StringIO(), io.StringIO()
    for stream, is_tty in ((plain, False), (tty, True)):
        bar = ProgressBar(stream, tty=is_tty)
        for event in events:
            bar(event)
    assert "\r" not in plain.getvalue()
    assert plain.getvalue().splitlines() == [
        "accepted r1 seed=5 64x64",
        "queued: position 3 of 3",
        "queued: next, waiting for the model runner (busy, or starting and warming up)",
        "step 1/8 10 ms",
        "step 2/8 20 ms",
        "step 4/8 40 ms",
        "step 6/8 60 ms",
        "step 8/8 80 ms",
        "done in 90 ms",
    ]
    assert tty.getvalue().count("\r") == len(events) and tty.getvalue().endswith("\n")


def test_sizes_above_the_trained_size_say_what_to_expect(served: str, tmp_path: Path) -> None:
    common = ["--steps", "1", "--seed", "1", "--address", served]
    big = pixelkiln("generate", "moss", "--size", "128", "-o", str(tmp_path / "a.png"), *common)
    assert big.returncode == 0, big.stderr
    notes = [line for line in big.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: tiny-random was trained at 64x64; at 128x128 expect its detail at the 64 px "
        "scale, repeated, rather than a larger picture (--size 64 makes what it was trained for)"
    ]
    native = pixelkiln("generate", "moss", "--size", "64", "-o", str(tmp_path / "b.png"), *common)
    assert native.returncode == 0, native.stderr
    assert "note:" not in native.stderr
    odd = pixelkiln("generate", "moss", "--size", "100", "-o", str(tmp_path / "c.png"), *common)
    assert odd.returncode == 1  # refused by the daemon, with no note about 100x100 before it
    assert odd.stderr.splitlines()[0].startswith("error: INVALID_ARGUMENT: width:"), odd.stderr


SERVE_MISTAKES = [
    (["--port", "70000"], "--port: must be 0..65535 (0: any free port); got 70000"),
    (["--ws-port", "-2"], "--ws-port: must be -1..65535 (-1: off, 0: any free port); got -2"),
    (["--queue-size", "0"], "--queue-size: must be >= 1; got 0"),
    (["--live-idle-timeout", "0"], "--live-idle-timeout: must be > 0; got 0.0"),
    (["--max-batch", "0"], "--max-batch: must be >= 1; got 0"),
    (["--ws-send-stall", "-1"], "--ws-send-stall: must be >= 0 (0: never); got -1.0"),
]


@pytest.mark.parametrize(("extra", "expected"), SERVE_MISTAKES)
def test_serve_refuses_numbers_out_of_range(extra: list[str], expected: str) -> None:
    proc = pixelkiln("serve", "--model", "tiny-random", *extra)
    assert proc.returncode == 2
    assert proc.stderr == f"pixelkiln serve: error: {expected}\n"


def test_serve_on_a_port_in_use_says_so() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in (
            ["--port", str(port), "--ws-port", "-1"],
            ["--port", "0", "--ws-port", str(port)],
        ):
            proc = pixelkiln("serve", "--model", "tiny-random", *extra)
            assert proc.returncode == 2, proc.stderr
            last = proc.stderr.strip().splitlines()[-1]  # gRPC core may log its own line first
            assert last.startswith("pixelkiln serve: error: ") and str(port) in last
            assert last.endswith(
                "choose free ports with --port/--ws-port or stop the daemon already running there"
            )
            assert "Traceback" not in proc.stderr


def test_serve_on_a_missing_device_says_so() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = pixelkiln("serve", "--model", "tiny-random", "--device", "cuda", "--port", "0")
    assert proc.returncode == 2
    assert proc.stderr.startswith("pixelkiln serve: error: --device: cuda is not available (torch ")
    assert proc.stderr.endswith("sees no CUDA device); use --device auto or cpu\n")


def test_an_address_that_does_not_resolve_is_a_usage_mistake() -> None:
    proc = pixelkiln("models", "--address", "no-such-host.invalid:50051", "--timeout", "20")
    assert proc.returncode == 2
    assert proc.stderr.startswith("pixelkiln models: error: no PixelKiln daemon at no-such-host")


def test_the_library_names_the_field_of_a_number_it_cannot_send() -> None:
    from pixelkiln._request import build_live_input, build_request

    with pytest.raises(ValueError, match=r"^num_images: must be 1 or more; got -2$"):
        build_request("x", num_images=-2)
    with pytest.raises(ValueError, match=r"^seed: must be below 18446744073709551616; got "):
        build_request("x", seed=2**64)
    with pytest.raises(ValueError, match=r"^maps: unknown value 'normals'; allowed: normal, "):
        build_request("x", maps="normals")
    with pytest.raises(ValueError, match=r"^steps: must be 0 or more; got -1$"):
        build_live_input(1, steps=-1)
    assert build_request("x", seed=2**64 - 1, size=64).seed == 2**64 - 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    from pixelkiln.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"pixelkiln {version('pixelkiln')}\n"
    assert version("pixelkiln") == "0.1.0"


@pytest.mark.parametrize("kind", ["BMP", "GIF"])
def test_init_images_of_every_kind_the_daemon_decodes(
    kind: str, served: str, tmp_path: Path
) -> None:
    init = tmp_path / f"sketch.{kind.lower()}"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(init, format=kind)
    out = tmp_path / "edit.png"
    proc = pixelkiln(
        "generate", "bricks", "--init", str(init), "--steps", "2", "-o", str(out),
        "--address", served,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def test_a_deadline_of_the_clients_own_timeout_says_so(served: str, tmp_path: Path) -> None:
    proc = pixelkiln(
        "generate", "x", "--timeout", "0.001", "-o", str(tmp_path / "x.png"), "--address", served
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: DEADLINE_EXCEEDED: "), last
    assert last.endswith(" (the --timeout of 0.001 s passed; raise it)")


def test_a_result_written_into_a_missing_folder_names_the_file(tmp_path: Path) -> None:
    """The folder can go between the check of -o and the write: the user's name is said, not
    the temporary file's."""
    from pixelkiln import Image as ResultImage
    from pixelkiln._cli_parts import UsageError
    from pixelkiln._cli_parts import written as _written

    image = ResultImage(png_bytes(np.zeros((8, 8, 3), np.uint8)), "png", 8, 8)
    target = tmp_path / "gone" / "x.png"
    with pytest.raises(UsageError) as info:
        _written(target, image.save)
    assert str(info.value) == (
        f"-o/--output: cannot write {target}: folder {target.parent} does not exist"
    )


def test_replay_of_one_image_of_a_batch_makes_that_image(served: str, tmp_path: Path) -> None:
    """gems_1.png's recipe is its batch's with its index: replay runs the batch (its pixels
    depend on it) and writes that image alone (it wrote the whole batch, and no -o file)."""
    common = ["--size", "64", "--steps", "1", "--seed", "5", "--address", served]
    made = pixelkiln("generate", "gem", "--count", "3", "-o", "gems.png", *common, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    again = pixelkiln("replay", "gems_1.png", "-o", "one.png", "--address", served, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("one.png (64x64, seed 6)"), again.stdout
    assert not list(tmp_path.glob("one_*"))
    assert decode((tmp_path / "one.png").read_bytes()).tobytes() == (
        decode((tmp_path / "gems_1.png").read_bytes()).tobytes()
    )
    recipe = json.loads(Image.open(tmp_path / "gems_1.png").text["pixelkiln"])  # type: ignore[attr-defined]
    assert recipe["image_index"] == 1 and recipe["request"]["num_images"] == 3
    recipe["image_index"] = 7
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(recipe))
    bad = pixelkiln("replay", str(hostile), "--address", served, cwd=tmp_path)
    assert bad.returncode == 2
    assert "'image_index': 7 is not an image of its batch of 3" in bad.stderr
