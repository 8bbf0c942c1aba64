"""The Godot 4 client (clients/gdscript/client) and addon (engine_plugins/godot/addons/pixelkiln).

Godot 4's editor cannot be installed here; its web build runs e2e.gd for real in
test_godot_web.py (tools/godot_web). Here, as the fast layer and for what a release build cannot
run:

- every .gd file of the client, the addon and the harness is parsed with gdtoolkit's Godot 4
  grammar (gdparse) and linted with gdlint's default rules;
- the addon's copies of the client, messages and codec must equal clients/gdscript/
  (``engine_plugins/godot/sync_addon.py --check``);
- the client runs for real on gdvm.py (the stub interpreter of tests/stubs plus signals,
  callables, ``await`` and a ``WebSocketPeer`` backed by a real WebSocket connection) against a
  ``pixelkiln serve`` child process: tests/clients_gd/e2e.gd connects, generates, cancels, runs
  a live session, loads models and hits errors; the faults (closed port, gRPC port, wrong path,
  silent servers, Godot's default 64 KiB buffer) and a daemon crash are exercised the same way;
- asset_writer.gd runs on the interpreter too: names, .import settings, and the atomic writes
  of a result with maps and an atlas into a temporary project.

What still needs a real Godot 4 editor (see engine_plugins/godot/addons/pixelkiln/README.md):
the editor dock and plugin, Image decoding, the editor's import of the files.
"""

from __future__ import annotations

import configparser
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from websockets.sync.server import serve

from ..conftest import free_port, start_served
from ..stubs.gdscript_builtins import PackedByteArray
from .checks import check_faults, check_run, check_timeouts

pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
from .gdvm import GodotVM  # noqa: E402 - the interpreter parses with gdtoolkit

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "gdscript" / "client"
PROJECT = ROOT / "engine_plugins" / "godot"
ADDON = PROJECT / "addons" / "pixelkiln"
E2E = Path(__file__).resolve().parent / "e2e.gd"
COPIED = ("generated", "runtime", "client")


def _own_gd_files() -> list[Path]:
    """Hand-written .gd files (the addon's copies are checked against their sources)."""
    addon = [p for p in sorted(ADDON.rglob("*.gd")) if p.relative_to(ADDON).parts[0] not in COPIED]
    names = ("web_main.gd", "secure.gd", "dock_checks.gd")
    harnesses = [E2E, *(E2E.with_name(name) for name in names)]
    return sorted(CLIENT.glob("*.gd")) + addon + harnesses


@pytest.mark.parametrize("path", _own_gd_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_gdscript_parses_and_lints(path: Path) -> None:
    from gdtoolkit.linter import DEFAULT_CONFIG, lint_code
    from gdtoolkit.parser import parser

    code = path.read_text(encoding="utf-8")
    parser.parse(code)  # gdparse: raises on a syntax error
    problems = lint_code(code, DEFAULT_CONFIG)
    assert not problems, "\n".join(f"{path.name}:{p.line}: {p.description}" for p in problems)


def test_addon_copies_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "sync_addon.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_addon_layout() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ADDON / "plugin.cfg", encoding="utf-8")
    plugin = {key: value.strip('"') for key, value in cfg["plugin"].items()}
    assert set(plugin) == {"name", "description", "author", "version", "script"}
    assert plugin["script"] == "plugin.gd" and (ADDON / plugin["script"]).is_file()
    for name in ("dock.gd", "asset_writer.gd", "README.md"):
        assert (ADDON / name).is_file(), name
    project = (PROJECT / "project.godot").read_text(encoding="utf-8")
    assert 'enabled=PackedStringArray("res://addons/pixelkiln/plugin.cfg")' in project


# ---- the client on the interpreter, against a daemon ---------------------------------------


@pytest.fixture
def vm() -> Iterator[GodotVM]:
    machine = GodotVM(res_root=PROJECT)
    yield machine
    machine.shutdown()


def _run(vm: GodotVM, function: str, *args: Any, timeout: float = 90, **kw: Any) -> Any:
    harness = vm.load(E2E)
    instance = vm.new(harness, [])
    started = vm.call(harness.funcs[function], instance, list(args))
    value = vm.run_until_done(started, timeout, **kw)
    assert not instance.vals["problems"], instance.vals["problems"]
    assert not vm.engine_errors, vm.engine_errors
    return value


def _png_size(data: Any) -> tuple[int, int]:
    return Image.open(io.BytesIO(bytes(data.data))).size


def test_client_end_to_end(ws_daemon: tuple[str, int], vm: GodotVM) -> None:
    _, ws_port = ws_daemon
    report = _run(vm, "run", f"ws://127.0.0.1:{ws_port}/v1")
    check_run(report, _png_size)
    # The client's buffers hold the largest frame this daemon may send.
    client = vm.load(CLIENT / "pixelkiln_client.gd")
    assert 0 < report["max_message_bytes"] <= vm.class_const(client, "DEFAULT_BUFFER_BYTES")


def test_faults_give_clear_errors(ws_daemon: tuple[str, int], vm: GodotVM) -> None:
    address, ws_port = ws_daemon
    out = _run(
        vm,
        "run_faults",
        f"ws://127.0.0.1:{free_port()}/v1",
        f"ws://{address}/v1",
        f"ws://127.0.0.1:{ws_port}/nope",
        f"ws://127.0.0.1:{ws_port}/v1",
    )
    check_faults(out, web=False)


def test_deadlines_when_nothing_answers(vm: GodotVM) -> None:
    with (
        serve(ignore_frames, "127.0.0.1", 0) as ignoring,
        socket.create_server(("127.0.0.1", 0)) as stalled,
    ):
        threading.Thread(target=ignoring.serve_forever, daemon=True).start()
        ws_port = ignoring.socket.getsockname()[1]
        tcp_port = stalled.getsockname()[1]
        out = _run(
            vm, "run_timeouts", f"ws://127.0.0.1:{ws_port}/v1", f"ws://127.0.0.1:{tcp_port}/v1"
        )
        ignoring.shutdown()
    check_timeouts(out, tcp_port)


def ignore_frames(connection: Any) -> None:
    for _ in connection:
        pass


def test_reconnects_after_the_daemon_dies(vm: GodotVM) -> None:
    ws_port = free_port()
    procs = [start_served("--ws-port", str(ws_port))[0]]
    harness = vm.load(E2E)
    instance = vm.new(harness, [])
    down_since: list[float] = []

    def between_frames() -> None:
        stage = instance.vals["stage"]
        if stage == "running" and procs[0].poll() is None:
            procs[0].kill()  # a crash: no close frame
            procs[0].wait()
        elif stage == "down" and len(procs) == 1:
            if not down_since:
                down_since.append(time.monotonic())
            elif time.monotonic() - down_since[0] > 1.5:  # let a few reconnects fail first
                procs.append(start_served("--ws-port", str(ws_port))[0])

    try:
        started = vm.call(
            harness.funcs["run_reconnect"], instance, [f"ws://127.0.0.1:{ws_port}/v1"]
        )
        out = vm.run_until_done(started, 120, on_frame=between_frames)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    assert out["job"].startswith("UNAVAILABLE: connection to the daemon at ws://127.0.0.1:")
    reasons = list(out["reasons"])
    assert (
        reasons[0].startswith("connection to the daemon at") and "retrying in 200 ms" in reasons[0]
    )
    failed_attempts = [r for r in reasons[1:-1] if r.startswith("cannot connect")]
    assert len(failed_attempts) >= 2, reasons
    assert reasons[-1] == "closed by the client"
    assert out["status"] == "" and out["ready"] is True


# ---- the addon's logic on the interpreter --------------------------------------------------


def test_import_settings_per_asset_kind(vm: GodotVM) -> None:
    writer = vm.load(ADDON / "asset_writer.gd")
    settings = writer.funcs["import_settings"]
    texture = dict(vm.call(settings, None, ["texture", True]))
    assert texture["mipmaps/generate"] is True and texture["compress/mode"] == 2  # VRAM
    normal = dict(vm.call(settings, None, ["normal", True]))
    assert normal["compress/normal_map"] == 1 and normal["mipmaps/generate"] is True
    sprite = dict(vm.call(settings, None, ["sprite", False]))
    assert sprite["compress/mode"] == 0 and sprite["mipmaps/generate"] is False
    assert sprite["process/fix_alpha_border"] is True
    text = vm.call(writer.funcs["import_file_text"], None, [texture])
    assert text.startswith('[remap]\n\nimporter="texture"\ntype="CompressedTexture2D"\n')
    assert "\n[params]\n\n" in text and "mipmaps/generate=true\n" in text
    assert "compress/mode=2\n" in text


def test_asset_names(vm: GodotVM) -> None:
    writer = vm.load(ADDON / "asset_writer.gd")
    slug = writer.funcs["slug"]
    assert vm.call(slug, None, ["Mossy cobblestone, wet!"]) == "mossy_cobblestone_wet"
    assert vm.call(slug, None, ["   "]) == "image"
    assert len(vm.call(slug, None, ["x" * 200])) <= 40


if os.environ.get("PIXELKILN_GODOT"):  # pragma: no cover - only where Godot 4 exists

    def test_e2e_on_real_godot(ws_daemon: tuple[str, int]) -> None:
        _, ws_port = ws_daemon
        godot = os.environ["PIXELKILN_GODOT"]
        cmd = [godot, "--headless", "--path", str(PROJECT), "--script", str(E2E)]
        ran = subprocess.run(
            [*cmd, "--", f"ws://127.0.0.1:{ws_port}/v1"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr


def test_save_result_writes_assets_atomically(tmp_path: Path) -> None:
    from pixelkiln.v1 import generator_pb2 as gen_pb
    from pixelkiln.v1 import image_pb2 as image_pb

    machine = GodotVM(res_root=tmp_path)  # res:// is an empty project
    writer = machine.load(ADDON / "asset_writer.gd")
    pk = machine.load(ADDON / "generated" / "pixelkiln_v1.gd")

    def png(color: tuple[int, int, int, int]) -> image_pb.Image:
        buf = io.BytesIO()
        Image.new("RGBA", (8, 8), color).save(buf, format="PNG")
        return image_pb.Image(data=buf.getvalue(), encoding=image_pb.ENCODING_PNG)

    def decoded(name: str, message: Any) -> Any:
        cls = machine.class_const(pk, name)
        data = PackedByteArray(message.SerializeToString())
        return machine.call(cls.funcs["from_bytes"], None, [data])

    normal, height = gen_pb.MAP_KIND_NORMAL, gen_pb.MAP_KIND_HEIGHT
    request = gen_pb.GenerateRequest(
        prompt="Mossy stone!", tiling=gen_pb.TILING_XY, maps=[normal, height], num_images=2
    )
    images = [
        gen_pb.GeneratedImage(
            image=png((i, 0, 0, 255)),
            seed=7 + i,
            index=i,
            maps=[gen_pb.DerivedMap(kind=k, image=png((0, i, k, 255))) for k in (normal, height)],
        )
        for i in range(2)
    ]
    atlas = gen_pb.Atlas(image=png((9, 9, 9, 255)), frames_json='{"frames": {}}')
    result = gen_pb.Result(images=images, atlas=atlas)
    args = [decoded("ResultMsg", result), decoded("GenerateRequestMsg", request), "res://pixelkiln"]
    out = machine.call(writer.funcs["save_result"], None, args)
    assert not out["errors"], out["errors"]
    folder = tmp_path / "pixelkiln"
    names = {
        "mossy_stone_7_0.png", "mossy_stone_7_0_normal.png", "mossy_stone_7_0_height.png",
        "mossy_stone_7_1.png", "mossy_stone_7_1_normal.png", "mossy_stone_7_1_height.png",
        "mossy_stone_7_atlas.png",
    }  # fmt: skip
    saved = [*names, "mossy_stone_7_atlas.json"]
    assert sorted(out["paths"]) == sorted(f"res://pixelkiln/{n}" for n in saved)
    on_disk = {p.name for p in folder.iterdir()}
    assert on_disk == names | {n + ".import" for n in names} | {"mossy_stone_7_atlas.json"}
    assert (folder / "mossy_stone_7_1_normal.png").read_bytes() == images[1].maps[0].image.data
    albedo = (folder / "mossy_stone_7_0.png.import").read_text(encoding="utf-8")
    assert "compress/mode=2\nmipmaps/generate=true\n" in albedo
    assert "compress/normal_map=1" in (folder / "mossy_stone_7_0_normal.png.import").read_text()
    assert "compress/normal_map" not in (folder / "mossy_stone_7_0_height.png.import").read_text()
    assert "mipmaps/generate=false" in (folder / "mossy_stone_7_atlas.png.import").read_text()
    # Saving again never overwrites: the next free name is taken.
    again = machine.call(writer.funcs["save_result"], None, args)
    assert again["paths"][0] == "res://pixelkiln/mossy_stone_7_2_0.png"
