"""The GDScript client in the real Godot 4.6: its official web export template, run in headless
Chromium by tools/godot_web against a `pixelkiln serve` child process.

One page load runs tests/clients_gd/e2e.gd (the script the interpreter tests run) through
run(), run_faults() and run_timeouts(), and prints one JSON report line; the tests below check
it with the interpreter tests' checks (tests/clients_gd/checks.py). This is a release build:
no editor classes (the dock stays on the interpreter), ``assert`` is a no-op, single-threaded.

Needs ``chromium-headless-shell`` (Debian) and the template (``python tools/godot_web fetch``,
npm); .ci/run installs both. Without them these tests skip with the reason.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from websockets.sync.server import serve

from ..conftest import free_port
from .checks import check_faults, check_run, check_timeouts

TOOLS = Path(__file__).resolve().parents[2] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from godot_web import pck, project, runner, template  # noqa: E402

# Engine start (a 38 MB wasm, compiled by the browser) plus the three runs: about 25 s here.
RUN_TIMEOUT_S = 150

# daemon_command.gd calls the real engine runs; the interpreter runs the same ones (and
# test_daemon_launcher.py checks their values there).
LAUNCHER_CALLS: list[tuple[str, list[Any]]] = [
    ("candidates", ["C:\\Users\\Jürgen\\.venv\\", "Windows"]),
    ("candidates", ["/home/a b/.venv", "macOS"]),
    ("parent_dir", ["C:/Users/Jürgen/game"]),
    ("parent_dir", ["C:\\game\\"]),
    ("parent_dir", ["/home"]),
    ("parent_dir", ["/"]),
    ("resolve", ["", "/no/such/project/", "Linux"]),
    ("resolve", ["/no such/pixelkiln", "/p/", "Windows"]),
    ("resolve", ["~/no such/pixelkiln", "/p/", "Linux", "/home/a b"]),
    ("resolve", ["~\\no such", "/p/", "Windows", "C:\\Users\\Jürgen\\"]),
    ("expand_home", ["~other/x", "/home/me"]),
    ("local_port", ["ws://127.0.0.1:6000/v1"]),
    ("local_port", ["wss://[::1]:7000/v1"]),
    ("local_port", ["ws://localhost/v1"]),
    ("local_port", ["ws://10.0.0.2:50052/v1"]),
    ("local_port", ["ws://127.0.0.1:70000/v1"]),
    ("local_port", ["http://127.0.0.1:1/v1"]),
    ("split_arguments", ['--model-root "D:\\Modelle für KI\\" --grace 30']),
    ("split_arguments", ["a\"b c\"d '' \t x"]),
    ("split_arguments", ['--model "sd turbo']),
    ("serve_arguments", [6000, "--model 'sd turbo'", "Linux"]),
    ("serve_arguments", [50052, "--model-root 'C:\\my models\\'", "Windows"]),
    ("serve_arguments", [50052, "--ws-port=1", "Linux"]),
    ("windows_problem", ["C:\\a b\\"]),
    ("windows_problem", ["C:\\Users\\Jürgen\\モデル"]),
    ("windows_problem", [""]),
    ("tail_lines", ["x\r\nline 1\r\nline 2\n\n", 2, True]),
    ("exit_message", [9, "# header", "pixelkiln"]),
    ("exit_message", [1, "# header\nport already in use", "pixelkiln"]),
    ("is_ours", [{"pid": 5, "started": 1.5, "editor_pid": 7}, 5, 7]),
    ("is_ours", [{"pid": 5, "started": 1.5, "editor_pid": 7}, 5, 8]),
]

needs_browser = pytest.mark.skipif(bool(runner.missing()), reason=runner.missing() or "ready")


def _ignore_frames(connection: Any) -> None:
    for _ in connection:
        pass


@pytest.fixture(scope="module")
def web_run(ws_daemon: tuple[str, int]) -> Iterator[tuple[runner.Report, int]]:
    """(the run, the stalled server's port) of one page load against the daemon."""
    address, ws_port = ws_daemon
    with (
        serve(_ignore_frames, "127.0.0.1", 0) as ignoring,
        socket.create_server(("127.0.0.1", 0)) as stalled,
    ):
        threading.Thread(target=ignoring.serve_forever, daemon=True).start()
        stalled_port = stalled.getsockname()[1]
        url = f"ws://127.0.0.1:{ws_port}/v1"
        config = {
            "url": url,
            "faults": [
                f"ws://127.0.0.1:{free_port()}/v1",
                f"ws://{address}/v1",
                f"ws://127.0.0.1:{ws_port}/nope",
                url,
            ],
            "timeouts": [
                f"ws://127.0.0.1:{ignoring.socket.getsockname()[1]}/v1",
                f"ws://127.0.0.1:{stalled_port}/v1",
            ],
            "deadline_ms": (RUN_TIMEOUT_S - 30) * 1000,
            "launcher": LAUNCHER_CALLS,
            "dock": True,
        }
        try:
            got = runner.run(config, timeout=RUN_TIMEOUT_S)
        finally:
            ignoring.shutdown()
    print(f"real Godot run: {got.seconds:.1f} s")
    yield got, stalled_port


def _report(web_run: tuple[runner.Report, int]) -> dict[str, Any]:
    got = web_run[0]
    report = got.report
    assert report is not None
    assert "deadline" not in report, f"stopped by its deadline in {report['deadline']}"
    assert report["problems"] == [], report["problems"]
    assert got.exit_code == 0, got.console
    decoded: dict[str, Any] = runner.decode_bytes(report)
    return decoded


def _png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


@needs_browser
def test_it_is_the_real_godot_46(web_run: tuple[runner.Report, int]) -> None:
    report = _report(web_run)
    assert report["engine"].startswith("4.6-stable") and report["web"] is True
    assert any(line.startswith("Godot Engine v4.6.stable.official") for line in web_run[0].console)
    # The browser is gone, with every process it started (none outlives a run).
    with pytest.raises(ProcessLookupError):
        os.killpg(web_run[0].browser_group, 0)


@needs_browser
def test_client_end_to_end(web_run: tuple[runner.Report, int]) -> None:
    check_run(_report(web_run)["run"], _png_size)


@needs_browser
def test_faults_give_clear_errors(web_run: tuple[runner.Report, int]) -> None:
    report = _report(web_run)
    check_faults(report["faults"], web=True)
    # What the browser's WebSocket does with a frame over the inbound buffer: drop it, loudly.
    assert any("Buffer payload full" in line for line in web_run[0].console)


@needs_browser
def test_deadlines_when_nothing_answers(web_run: tuple[runner.Report, int]) -> None:
    check_timeouts(_report(web_run)["timeouts"], web_run[1])


@needs_browser
def test_asset_writer_saves_what_the_engine_decodes(web_run: tuple[runner.Report, int]) -> None:
    assets = _report(web_run)["assets"]
    assert "error" not in assets, assets
    assert not assets["errors"], assets["errors"]
    names = ["mossy_stone_7.png", "mossy_stone_7_normal.png"]
    assert sorted(assets["paths"]) == sorted(
        assets["paths"][0].rsplit("/", 1)[0] + "/" + n for n in names
    )
    # The real engine decodes both PNGs it wrote, byte for byte what the daemon sent.
    assert assets["sizes"] == {name: [64, 64] for name in names}
    assert assets["same_bytes"] == {name: True for name in names}
    assert "compress/mode=2" in assets["import"] and "mipmaps/generate=true" in assets["import"]
    # Saving again takes the next free name; nothing half-written is left behind.
    again = ["mossy_stone_7_2.png", "mossy_stone_7_2_normal.png"]
    assert [path.rsplit("/", 1)[1] for path in assets["again"]] == again
    assert set(assets["files"]) == {n + ext for n in names + again for ext in ("", ".import")}


@needs_browser
def test_asset_names_never_overwrite(web_run: tuple[runner.Report, int]) -> None:
    names = _report(web_run)["dock"]["names"]
    assert names["errors"] == []
    # "x 7" seed 1, then "x" seed 7 with two images: x_7_0/x_7_1 would take the first's x_7_1.
    assert [p.rsplit("/", 1)[1] for p in names["first"]] == ["x_7_1.png", "x_7_1_normal.png"]
    second = ["x_7_2_0.png", "x_7_2_0_normal.png", "x_7_2_1.png", "x_7_2_1_normal.png"]
    assert [p.rsplit("/", 1)[1] for p in names["second"]] == second
    assert names["kept"] is True and names["normal_kept"] is True
    # write_atomic renames over an existing file only when asked to (32: ERR_ALREADY_EXISTS).
    assert names["refused"] == 32
    assert names["written"] == [0, 0, "[]"]
    images = ["x_7_1.png", "x_7_1_normal.png", *second]
    want = {n + ext for n in images for ext in ("", ".import")} | {"extra.json"}
    assert set(names["files"]) == want


@needs_browser
def test_oversized_frame_is_resource_exhausted(web_run: tuple[runner.Report, int]) -> None:
    frame = _report(web_run)["dock"]["frame"]
    assert frame["done"] is True and frame["code"] == "RESOURCE_EXHAUSTED"
    assert frame["message"].startswith("frame of 20")  # 2000 bytes of prompt and the envelope
    assert "bytes exceeds the message limit of 1000 bytes" in frame["message"]
    assert "raise --max-message-mib on the daemon" in frame["message"]


@needs_browser
def test_dock_checks_the_seed_and_the_folder(web_run: tuple[runner.Report, int]) -> None:
    checks = _report(web_run)["dock"]["checks"]
    assert checks["empty"] == {"folder": "res://pixelkiln", "error": ""}
    assert checks["nested"] == {"folder": "res://art/stone/moss", "error": ""}
    for refused in ("up", "absolute", "user"):
        assert checks[refused]["folder"] == "" and checks[refused]["error"].startswith("Save to:")
    assert "leaves the project" in checks["up"]["error"]
    assert "not inside the project" in checks["absolute"]["error"]
    # uint64 seeds: 2^64 - 1 travels as the int with the same 64 bits; more is refused.
    assert checks["seed_max"] == {"seed": -1, "error": ""}
    assert checks["seed_31"] == {"seed": 2**31, "error": ""}
    assert checks["seed_over"]["error"].startswith("Seed: 18446744073709551616 is larger than")
    assert "is not a whole number" in checks["seed_text"]["error"]


@needs_browser
def test_dock_keeps_its_job_when_moved(web_run: tuple[runner.Report, int]) -> None:
    dock = _report(web_run)["dock"]["dock"]
    assert "error" not in dock, dock
    assert dock["connected"] is True
    # Refused before anything is sent: a seed over 2^64 - 1, a folder outside the project.
    seed_message, seed_no_job = dock["refused"]["seed"]
    assert seed_no_job is True and "larger than 18446744073709551615" in seed_message
    folder_message, folder_no_job = dock["refused"]["folder"]
    assert folder_no_job is True and "'/tmp/outside' is not inside the project" in folder_message
    # Taken out of the tree and added under another parent during the job: it still finishes,
    # with the largest seed, shows the result and saves it under res:// (read-only in a web
    # build: the pack; the writer is checked under user:// above), and nothing that was not
    # saved reaches the editor's file system.
    assert dock["done_when_moved"] is False
    assert dock["job"] == ["", "", "18446744073709551615"]
    assert dock["preview"] == [64, 64]
    assert dock["message"] == "Could not save res://pixelkiln_moved: Unavailable"
    assert dock["still_connected"] is True
    assert dock["updated"] == [] and dock["reimported"] == []
    assert dock["after_free"] == 0  # freed: disconnected


@needs_browser
def test_dock_settings_round_trip(web_run: tuple[runner.Report, int]) -> None:
    settings = _report(web_run)["settings"]
    assert settings["daemon_default"] == {"url": "ws://127.0.0.1:50052/v1", "connect": True}
    assert settings["daemon_saved"] == {"url": "ws://10.0.0.2:50052/v1", "connect": False}
    # Token and CA: editor settings (never the project), read into the client at each connect.
    assert settings["security_default"] == ["", ""]
    assert settings["security_saved"] == ["pk_studio-token", "/studio/ca.pem"]
    assert settings["token_masked"] is True
    saved = {
        "prompt": "mossy stone",
        "folder": "res://art",
        "width": 256,
        "tiling": 3,
        "trim": True,
    }
    assert settings["values"] == saved
    # Restored from the saved form, except the folder a hand edit made a number: kept as it was.
    assert settings["restored"] == {**saved, "folder": "res://pixelkiln"}


@needs_browser
def test_daemon_launcher_logic_in_the_real_engine(
    web_run: tuple[runner.Report, int], tmp_path: Path
) -> None:
    pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
    from .gdvm import GodotVM

    launcher = _report(web_run)["launcher"]
    machine = GodotVM(res_root=tmp_path)
    script = machine.load(project.ADDON / "daemon_command.gd")
    expected = [
        json.loads(json.dumps(machine.call(script.funcs[name], None, list(args)), default=list))
        for name, args in LAUNCHER_CALLS
    ]
    machine.shutdown()
    # The interpreter (where test_daemon_launcher.py checks the values) agrees with Godot 4.6.
    for (name, args), got, want in zip(LAUNCHER_CALLS, launcher["calls"], expected, strict=True):
        assert got == want, (name, args)
    # A start recorded by another editor session: reported once, then forgotten; never acted on.
    assert "stopped when that editor or its dock closed" in launcher["note"]
    assert "(pid 4242)" in launcher["note"] and launcher["note_again"] == ""
    assert launcher["record_after"] == {}
    # Nothing starts for a URL on another machine; stop, pump and release do nothing then.
    assert "names 10.0.0.2: start it there" in launcher["remote"]
    assert launcher["running"] is False and launcher["tail_before_start"] == ""
    # The dock's panel: its button, its message, its settings (Editor Settings > PixelKiln).
    assert launcher["button"] == "Start daemon"
    assert launcher["panel_state"].startswith("Could not start the daemon: the dock starts")
    assert launcher["grace"] == 20.0 and launcher["executable_picker"] is True


@needs_browser
def test_addon_uids_are_what_godot_writes(web_run: tuple[runner.Report, int]) -> None:
    addon = project.ADDON
    scripts = sorted(p.relative_to(addon).as_posix() for p in addon.rglob("*.gd"))
    texts = {name: (addon / f"{name}.uid").read_text().strip() for name in scripts}
    assert len(set(texts.values())) == len(scripts)  # one per script, all different
    # Godot's ResourceUID parses each and writes it back unchanged (a malformed text would not).
    assert _report(web_run)["uids"] == texts


def test_handshake_problem_names_the_origin_rule(ws_daemon: tuple[str, int]) -> None:
    url = f"ws://127.0.0.1:{ws_daemon[1]}/v1"
    # The fixture's daemon allows http://127.0.0.1:* (the test page), and nothing else.
    assert runner.handshake_problem(url, "http://127.0.0.1:8123") == ""
    refused = runner.handshake_problem(url, "http://localhost:8123")
    assert "refused the page's Origin http://localhost:8123 (HTTP 403" in refused
    assert "--ws-allow-origin 'http://127.0.0.1:*'" in refused
    closed = runner.handshake_problem(f"ws://127.0.0.1:{free_port()}/v1", "http://127.0.0.1:1")
    assert closed.startswith("cannot connect to ws://127.0.0.1:") and "pixelkiln serve" in closed


@needs_browser
def test_cli_run_says_why_it_cannot_connect(capsys: pytest.CaptureFixture[str]) -> None:
    from godot_web import cli

    url = f"ws://127.0.0.1:{free_port()}/v1"
    assert cli.main(["run", url]) == 1  # at once, not after the run's deadline
    assert capsys.readouterr().out.startswith(f"error: cannot connect to {url}")


# ---- the packer, without a browser -----------------------------------------------------------


def test_pck_v3_layout() -> None:
    blob = pck.pack({"res://project.godot": b"config_version=5\n", "a/b.gd": b"x" * 17})
    assert blob[:4] == b"GDPC"
    version, major, minor, patch, flags = struct.unpack_from("<5I", blob, 4)
    assert (version, major, minor, patch) == (3, 4, 6, 0) and flags == pck.FLAG_REL_FILEBASE
    file_base, dir_offset = struct.unpack_from("<QQ", blob, 24)
    assert file_base == 112 and dir_offset % 16 == 0
    # Paths without res://, zero padded to 4 bytes; each file 16-byte aligned from the data.
    (count,) = struct.unpack_from("<I", blob, dir_offset)
    (length,) = struct.unpack_from("<I", blob, dir_offset + 4)
    assert count == 2 and blob[dir_offset + 8 : dir_offset + 8 + length] == b"a/b.gd\0\0"
    offset, size = struct.unpack_from("<QQ", blob, dir_offset + 8 + length)
    assert (offset, size) == (0, 17)
    second = dir_offset + 8 + length + 36
    (length2,) = struct.unpack_from("<I", blob, second)
    assert struct.unpack_from("<Q", blob, second + 4 + length2)[0] == 32
    assert pck.read_directory(blob) == {"project.godot": b"config_version=5\n", "a/b.gd": b"x" * 17}


def test_pck_refuses_paths_outside_the_project() -> None:
    with pytest.raises(ValueError, match="files: '../x.gd' is not a path inside the project"):
        pck.pack({"../x.gd": b""})
    with pytest.raises(ValueError, match="at least one file"):
        pck.pack({})


def test_project_declares_the_client_classes() -> None:
    files = project.files({"url": "ws://127.0.0.1:1/v1"})
    cache = files["res://.godot/global_script_class_cache.cfg"].decode()
    assert '"class": &"PixelKilnClient"' in cache and '"class": &"PixelKilnV1"' in cache
    assert '"path": "res://addons/pixelkiln/client/pixelkiln_client.gd"' in cache
    assert 'run/main_scene="res://main.tscn"' in files["res://project.godot"].decode()
    run = json.loads(files["res://run.json"])
    assert run["url"] == "ws://127.0.0.1:1/v1"
    assert set(run["uids"]) >= {"dock.gd", "client/pixelkiln_client.gd"}


def test_template_with_other_bytes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(template.TemplateError, match="integrity sha512-.* != pinned sha512-"):
        template.extract(b"not the package", tmp_path)
    assert not any(tmp_path.iterdir())
