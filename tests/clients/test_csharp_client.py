"""The C# client end to end with mono, and the Unity package compile-checked with mcs.

- Client: clients/csharp/{Runtime,Generated} and clients/csharp/Client are compiled with mono's
  ``mcs`` (warnings as errors; every public member of Client/ must have an XML doc comment),
  with the harness tests/clients/csharp/E2E.cs. Each scenario runs in its own ``mono`` process
  against a real ``pixelkiln serve`` child process on tiny-random (generate, cancel, live,
  errors), against closed and wrong ports, and against a scripted fake daemon (fragmented
  frames, the message limit, a dropped connection, reconnect).
- Unity: the shared sources copied into engine_plugins/unity must be fresh (Tools~/sync_client.py);
  each assembly definition of the package is compiled with the references it declares, against
  tests/clients/csharp/UnityStubs.cs: a compile-only stand-in for the UnityEngine/UnityEditor
  members the package uses (not Unity; see engine_plugins/unity/README.md for what that proves).

Everything here is skipped without mono (``apt-get install -y mono-devel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ..conftest import free_port, start_served

ROOT = Path(__file__).resolve().parents[2]
CSHARP = ROOT / "clients" / "csharp"
HERE = Path(__file__).resolve().parent / "csharp"
UNITY = ROOT / "engine_plugins" / "unity"
SYNC_SCRIPT = UNITY / "Tools~" / "sync_client.py"


def _compile(out: Path, sources: list[Path], *options: str) -> None:
    result = subprocess.run(
        ["mcs", "-nologo", "-warnaserror+", f"-out:{out}", *options, *map(str, sources)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"mcs {out.name}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def mono() -> None:
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        pytest.skip("the C# client tests need mono's mcs and mono: apt-get install -y mono-devel")


@pytest.fixture(scope="session")
def e2e_exe(mono: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Messages, client (docs enforced) and harness, compiled once per session."""
    build = tmp_path_factory.mktemp("csharp_client")
    messages = build / "PixelKiln.Messages.dll"
    client = build / "PixelKiln.Client.dll"
    exe = build / "E2E.exe"
    _compile(
        messages,
        sorted((CSHARP / "Runtime").glob("*.cs")) + sorted((CSHARP / "Generated").glob("*.cs")),
        "-target:library",
        "-nowarn:1591",
    )
    # -doc with warnings as errors: a public member of Client/ without <summary> fails (CS1591).
    _compile(
        client,
        sorted((CSHARP / "Client").glob("*.cs")),
        "-target:library",
        f"-r:{messages}",
        f"-doc:{build / 'PixelKiln.Client.xml'}",
    )
    _compile(exe, [HERE / "E2E.cs"], f"-r:{messages}", f"-r:{client}", "-r:System.Core")
    return exe


def run_e2e(exe: Path, *args: str, timeout: float = 120) -> dict[str, list[str]]:
    ran = subprocess.run(
        ["mono", "--debug", str(exe), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == 0, f"exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    out: dict[str, list[str]] = {}
    for line in ran.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out.setdefault(key, []).append(value)
    assert out.get("done") == ["1"], ran.stdout
    return out


def one(out: dict[str, list[str]], key: str) -> str:
    values = out.get(key)
    assert values is not None and len(values) == 1, f"{key}: {values}"
    return values[0]


@pytest.fixture(scope="module")
def ws_daemon() -> Iterator[tuple[str, int]]:
    """(ws url, gRPC port) of a `pixelkiln serve` child process with the WebSocket carrier."""
    ws_port = free_port()
    proc, address = start_served("--ws-port", str(ws_port))
    yield f"ws://127.0.0.1:{ws_port}/v1", int(address.rsplit(":", 1)[1])
    proc.terminate()
    proc.wait(timeout=30)


# ---- against the real daemon --------------------------------------------------------------


def test_generate_streams_events_and_saves_decodable_pngs(
    e2e_exe: Path, ws_daemon: tuple[str, int], tmp_path: Path
) -> None:
    out = run_e2e(e2e_exe, "generate", ws_daemon[0], str(tmp_path))
    assert one(out, "connected") == "True" and one(out, "status_ready") == "True"
    assert one(out, "status_max_message_bytes") == str(65 * 2**20)
    assert one(out, "default_model") == "tiny-random"
    assert "tiny-random" in one(out, "models").split(",")
    assert one(out, "loaded") == "tiny-random:True"
    # Two generations at once on one connection, each with only its own events, in order.
    first = one(out, "first_events").split(",")
    assert first[0] == "accepted" and first[-1] == "result"
    assert [e for e in first if e.startswith("progress")] == [
        "progress1/3",
        "progress2/3",
        "progress3/3",
    ]
    assert [e for e in first if e.startswith("preview")] == ["preview1", "preview2", "preview3"]
    second = one(out, "second_events").split(",")
    assert second[0] == "accepted" and second[-1] == "result"
    assert [e for e in second if e.startswith("progress")] == ["progress1/2", "progress2/2"]
    assert not any(e.startswith("preview") for e in second)
    assert one(out, "first_id").startswith("cs-gen-")
    assert one(out, "first_images") == "1" and one(out, "second_images") == "2"
    assert one(out, "first_seed") == "7" and one(out, "first_recipe_has_json") == "True"
    # GenerateAsync without handlers asks for the Result alone: the same image comes.
    assert one(out, "quiet_result_only") == "True:False" and one(out, "quiet_same_image") == "True"
    assert one(out, "heard_events").split(",")[0] == "accepted"  # with handlers: every event
    # Saved with temp file + rename: nothing half-written or temporary is left.
    assert out["saved"] == ["stone.png", "coin_0.png", "coin_1.png"]
    assert one(out, "leftover_temp") == "0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coin_0.png", "coin_1.png", "stone.png"]
    stone = Image.open(tmp_path / "stone.png")
    assert stone.format == "PNG" and stone.size == (96, 64)
    assert "pixelkiln" in stone.info  # the recipe chunk survived the round trip
    stone.convert("RGB").load()
    for name in ("coin_0.png", "coin_1.png"):
        assert Image.open(tmp_path / name).size == (64, 64)


def test_cancel_by_token_and_by_id(e2e_exe: Path, ws_daemon: tuple[str, int]) -> None:
    out = run_e2e(e2e_exe, "cancel", ws_daemon[0])
    # Token: the daemon confirmed CANCELLED well before the 40 steps (or the 10 s grace) ran out.
    assert one(out, "token_cancel") == "cancelled"
    assert int(one(out, "token_cancel_ms")) < 8000
    assert int(one(out, "token_cancel_steps")) < 40
    # CancelAsync by the client request id: acknowledged, the generation ends with CANCELLED.
    assert one(out, "cancel_ack") == "True"
    assert one(out, "id_cancel") == "CANCELLED" and one(out, "id_cancel_code") == "1"
    assert one(out, "cancel_unknown") == "False"
    assert one(out, "status_after") == "ready"


def test_live_session_answers_the_last_input(
    e2e_exe: Path, ws_daemon: tuple[str, int], tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    sketch = tmp_path / "sketch.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(sketch)
    out = run_e2e(e2e_exe, "live", ws_daemon[0], str(sketch))
    assert one(out, "last_sent") == "3"
    seqs = [int(s) for s in one(out, "frame_seqs").split(",")]
    assert seqs[0] == 1 and seqs[-1] == 3 and seqs == sorted(seqs)
    assert one(out, "last_frame_seq") == "3"
    assert int(one(out, "frame_events")) == len(seqs)  # the event saw every frame too
    assert one(out, "first_seed") == "3"
    assert one(out, "completion") == "RanToCompletion"
    assert one(out, "send_after_end") == "refused"
    frame = Image.open(tmp_path / one(out, "frame_file"))
    assert frame.size == (64, 64)


def test_live_options_reach_the_daemon_and_raw_frames_are_top_down(
    e2e_exe: Path, ws_daemon: tuple[str, int], tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    pixels[0, 0] ^= 1  # one level in one pixel: similar under any threshold above 0
    Image.fromarray(pixels).save(tmp_path / "b.png")
    out = run_e2e(e2e_exe, "liveoptions", ws_daemon[0], str(tmp_path))
    # Options given on a Send after open are merged with the open settings, not dropped.
    assert one(out, "raw_seq") == "1" and one(out, "raw_encoding") == "RawRgba8"
    assert one(out, "raw_size") == f"64x64:{64 * 64 * 4}"
    # tiny-random has no tiny autoencoder: asked for, reported as not applied.
    described = one(out, "raw_describe")
    # Recorded graphs serve calls where the daemon's measured runtime is torch (tiny-random's
    # lean path on the CPU), not where it chose ONNX Runtime: either may be said.
    assert re.fullmatch(
        r"input 1, \d+ ms, applied: raw frames(, recorded graphs \(\d+ calls\))?", described
    )
    assert one(out, "similar_seq") == "2" and one(out, "similar") == "True:False"
    assert "similar (skipped)" in one(out, "similar_describe")
    # Stream batch: the frame with an image answers an earlier input than the last sent.
    assert one(out, "stream_answers_earlier") == "True"
    assert "applied: stream batch, raw frames" in one(out, "stream_describe")
    assert one(out, "graphs_describe") == "input 7, 12 ms, applied: recorded graphs (4 calls)"
    # The raw frame, rows top to bottom, equals the Python client's frame of the same settings.
    from pixelkiln import Client

    with (
        Client(f"127.0.0.1:{ws_daemon[1]}", timeout=60) as client,
        client.live(prompt="moss", strength=0.5, steps=2, seed=3, output_encoding="png") as session,
    ):
        session.send(str(tmp_path / "a.png"))
        frame = next(iter(session))
    assert frame.image is not None
    expected = np.asarray(Image.open(io.BytesIO(frame.image.data)).convert("RGBA"))
    raw = np.frombuffer((tmp_path / "frame.rgba").read_bytes(), np.uint8).reshape(64, 64, 4)
    assert np.array_equal(raw, expected)


def test_errors_carry_code_name_and_field(e2e_exe: Path, ws_daemon: tuple[str, int]) -> None:
    out = run_e2e(e2e_exe, "error", ws_daemon[0])
    assert one(out, "width_error") == "INVALID_ARGUMENT" and one(out, "width_code") == "3"
    detail = one(out, "width_detail")
    assert "width" in detail and "100" in detail
    assert one(out, "width_is_connection_error") == "False"
    assert one(out, "model_error") == "NOT_FOUND" and one(out, "load_error") == "NOT_FOUND"
    assert one(out, "status_after") == "True"  # the connection survives its errors


def test_wrong_port_is_a_clear_error_not_a_hang(e2e_exe: Path, ws_daemon: tuple[str, int]) -> None:
    # The daemon's gRPC port speaks HTTP/2, not WebSocket.
    started = time.monotonic()
    out = run_e2e(e2e_exe, "wrongport", f"ws://127.0.0.1:{ws_daemon[1]}/v1", timeout=60)
    assert time.monotonic() - started < 30
    assert one(out, "connect") == "failed"
    message = one(out, "connect_message")
    assert message.startswith("UNAVAILABLE: cannot reach the PixelKiln daemon")
    assert "--ws-port" in message and "2 attempts" in message
    assert int(one(out, "connect_ms")) < 10_000


# ---- no daemon -------------------------------------------------------------------------------


def test_daemon_not_running_fails_fast_with_bounded_retries(e2e_exe: Path) -> None:
    port = free_port()  # bound then released: nothing listens
    started = time.monotonic()
    out = run_e2e(e2e_exe, "down", f"ws://127.0.0.1:{port}/v1", timeout=60)
    assert time.monotonic() - started < 30
    assert one(out, "connect") == "failed" and one(out, "connect_code") == "UNAVAILABLE"
    message = one(out, "connect_message")
    assert "after 3 attempts" in message and "connection refused" in message
    assert "Is the daemon running?" in message and f"--ws-port {port}" in message
    # 3 attempts with 100 + 200 ms of backoff: bounded, and well under the connect timeout.
    assert 250 <= int(one(out, "connect_ms")) < 5000
    assert one(out, "call") == "failed:UNAVAILABLE"
    assert "call ConnectAsync first" in one(out, "strict_call")


# ---- a scripted fake daemon ------------------------------------------------------------------


@contextlib.contextmanager
def fake_daemon() -> Iterator[str]:
    """A WebSocket server that answers status in 3 fragments (150 kB, so larger than the
    client's 64 KiB receive buffer), reports a 4096-byte message limit, and drops the
    connection without a close frame after accepting a generation."""
    from websockets.asyncio.server import ServerConnection, serve

    from pixelkiln.v1 import envelope_pb2 as env_pb
    from pixelkiln.v1 import generator_pb2 as gen_pb
    from pixelkiln.v1 import models_pb2 as models_pb

    async def handler(ws: ServerConnection) -> None:
        async for data in ws:
            assert isinstance(data, bytes)
            env = env_pb.Envelope.FromString(data)
            kind = env.WhichOneof("body")
            if kind == "status":
                status = models_pb.StatusResponse(
                    version="fake-" + "x" * 150_000,
                    ready=True,
                    max_message_bytes=4096,
                    loaded_models=["a", "b"],
                )
                frame = env_pb.Envelope(
                    request_id=env.request_id, status_response=status
                ).SerializeToString()
                await ws.send([frame[:3], frame[3:100_000], frame[100_000:]])
            elif kind == "generate":
                event = gen_pb.GenerateEvent(
                    request_id="srv-1", accepted=gen_pb.Accepted(request_id="srv-1")
                )
                await ws.send(
                    env_pb.Envelope(request_id=env.request_id, event=event).SerializeToString()
                )
                await asyncio.sleep(0.05)
                ws.transport.abort()
                return

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Any:
        return await serve(handler, "127.0.0.1", 0, compression=None, max_size=2**20)

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/v1"
    finally:

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_fragments_limit_connection_loss_and_reconnect(e2e_exe: Path) -> None:
    with fake_daemon() as url:
        out = run_e2e(e2e_exe, "fake", url, timeout=60)
    # Fragmented messages reassembled (handshake and call), 150 kB across 64 KiB reads.
    assert one(out, "handshake_version_length") == str(5 + 150_000)
    assert one(out, "status_version_prefix") == "fake-"
    assert one(out, "status_version_length") == str(5 + 150_000)
    assert one(out, "status_loaded") == "a,b"
    # Over the daemon's reported limit: refused before sending, the connection stays up.
    assert one(out, "oversized") == "RESOURCE_EXHAUSTED"
    assert "4096" in one(out, "oversized_detail")
    assert one(out, "connected_after_oversized") == "True"
    # Dropped mid-call: the pending call fails with a clear UNAVAILABLE, promptly.
    assert one(out, "saw_accepted") == "True"
    assert one(out, "dropped") == "UNAVAILABLE"
    assert "lost" in one(out, "dropped_message")
    assert int(one(out, "dropped_ms")) < 5000
    assert one(out, "disconnected_events") == "1"
    assert one(out, "disconnect_reason_set") == "True"
    # AutoReconnect: the next call opened a new connection.
    assert one(out, "reconnected_version_length") == str(5 + 150_000)


# ---- the Unity package -------------------------------------------------------------------------


def _sync_client() -> Any:
    """engine_plugins/unity/Tools~/sync_client.py as a module (no __pycache__ in the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pixelkiln_unity_sync", SYNC_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


def test_unity_package_client_copy_and_metas_are_fresh() -> None:
    ran = subprocess.run(
        [sys.executable, "-B", str(SYNC_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_unity_sync_check_notices_a_stale_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync = _sync_client()
    source = tmp_path / "csharp"
    shutil.copytree(CSHARP, source, ignore=shutil.ignore_patterns("bin", "obj"))
    monkeypatch.setattr(sync, "CSHARP", source)
    assert sync.stale() == []
    (source / "Client" / "Images.cs").write_text("// changed\n", encoding="utf-8")
    (source / "Client" / "New.cs").write_text("// new\n", encoding="utf-8")
    problems = sync.stale()
    assert any("Client/Client/Images.cs: differs" in p for p in problems), problems
    assert any("Client/Client/New.cs: missing" in p for p in problems), problems
    assert any("Client/Client/New.cs.meta: missing" in p for p in problems), problems


def test_unity_package_manifest_and_metas() -> None:
    manifest = json.loads((UNITY / "package.json").read_text(encoding="utf-8"))
    assert manifest["name"] == "com.pixelkiln.unity" and manifest["unity"] == "2021.3"
    assert manifest["version"].count(".") == 2
    guids: dict[str, Path] = {}
    for meta in UNITY.rglob("*.meta"):
        guid = next(
            line.split(": ")[1] for line in meta.read_text().splitlines() if line.startswith("guid")
        )
        assert len(guid) == 32 and guid not in guids, (meta, guids.get(guid))
        guids[guid] = meta
    editor = json.loads((UNITY / "Editor" / "PixelKiln.Unity.Editor.asmdef").read_text())
    assert editor["includePlatforms"] == ["Editor"]
    client = json.loads((UNITY / "Runtime" / "Client" / "PixelKiln.Client.asmdef").read_text())
    assert client["noEngineReferences"] is True and client["references"] == []


def test_unity_package_layout_urls_and_samples() -> None:
    """What the Package Manager shows and imports: licence, changelog, documentation URLs that
    name files of the package, samples that exist, and no maintainer scripts outside ``Tools~``
    (folders ending in ``~`` are not imported)."""
    manifest = json.loads((UNITY / "package.json").read_text(encoding="utf-8"))
    for key, name in [
        ("documentationUrl", "README.md"),
        ("changelogUrl", "CHANGELOG.md"),
        ("licensesUrl", "LICENSE"),
    ]:
        assert manifest[key].startswith("https://") and manifest[key].endswith(
            "/engine_plugins/unity/" + name
        ), manifest[key]
        assert (UNITY / name).is_file()
    assert manifest["license"] == "Apache-2.0"
    assert "Apache License" in (UNITY / "LICENSE").read_text(encoding="utf-8")
    assert "## [" in (UNITY / "CHANGELOG.md").read_text(encoding="utf-8")
    assert manifest["samples"], "no samples"
    for sample in manifest["samples"]:
        assert sample["displayName"] and sample["description"]
        folder = UNITY / sample["path"]
        assert sample["path"].startswith("Samples~/") and any(folder.rglob("*.cs")), folder
    # tools/gen_stubs.py runs the sync script after regenerating, and skips a missing one.
    gen_stubs = (ROOT / "tools" / "gen_stubs.py").read_text(encoding="utf-8")
    assert '"engine_plugins" / "unity" / "Tools~" / "sync_client.py"' in gen_stubs
    imported = [p for p in UNITY.rglob("*") if not any(part.endswith("~") for part in p.parts)]
    assert not [p for p in imported if p.suffix == ".py"], "scripts belong in Tools~"
    assert not [p for p in UNITY.rglob("*~/**/*.meta")], "folders ending in ~ need no .meta"


def test_unity_runtime_assemblies_exclude_webgl_and_kiln_is_disposed() -> None:
    """WebGL has no System.Net.WebSockets: the runtime assemblies are not built for it (a
    compile error where user code calls Kiln, not a failure at run time). The static Kiln
    client is disposed before an assembly reload and on quit (editor and player)."""
    for asmdef in ["Runtime/PixelKiln.Unity.asmdef", "Runtime/Client/PixelKiln.Client.asmdef"]:
        definition = json.loads((UNITY / asmdef).read_text(encoding="utf-8"))
        assert definition["excludePlatforms"] == ["WebGL"], asmdef
        assert definition["includePlatforms"] == [], asmdef  # one of the two must be empty
    lifetime = (UNITY / "Editor" / "KilnLifetime.cs").read_text(encoding="utf-8")
    assert "[InitializeOnLoad]" in lifetime
    assert "AssemblyReloadEvents.beforeAssemblyReload += Kiln.Shutdown;" in lifetime
    assert "EditorApplication.quitting += Kiln.Shutdown;" in lifetime
    kiln = (UNITY / "Runtime" / "Kiln.cs").read_text(encoding="utf-8")
    assert "Application.quitting += Shutdown;" in kiln


def _asmdefs() -> list[tuple[dict[str, Any], list[Path]]]:
    """Each assembly definition of the package with the .cs files Unity gives it."""
    defs = {p.parent: json.loads(p.read_text(encoding="utf-8")) for p in UNITY.rglob("*.asmdef")}
    sources: dict[Path, list[Path]] = {folder: [] for folder in defs}
    for cs in sorted(UNITY.rglob("*.cs")):
        owner = max((f for f in defs if cs.is_relative_to(f)), key=lambda f: len(f.parts))
        sources[owner].append(cs)
    return [(defs[f], sources[f]) for f in defs]


def test_unity_scripts_compile_against_the_stubs(
    mono: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Compile-only: each asmdef with exactly the references it declares (Editor-only
    assemblies may use UnityEditor; noEngineReferences ones may not use UnityEngine)."""
    build = tmp_path_factory.mktemp("unity")
    stubs = HERE / "UnityStubs.cs"
    engine, editor = build / "UnityEngine.dll", build / "UnityEditor.dll"
    _compile(engine, [stubs], "-target:library")
    _compile(editor, [stubs], "-target:library", "-define:PIXELKILN_STUB_EDITOR", f"-r:{engine}")
    sprite = build / "Unity.2D.Sprite.Editor.dll"  # the com.unity.2d.sprite package's editor API
    _compile(
        sprite, [HERE / "UnitySpriteStubs.cs"], "-target:library", f"-r:{engine}", f"-r:{editor}"
    )
    pending = _asmdefs()
    assert sorted(d["name"] for d, _ in pending) == [
        "PixelKiln.Client",
        "PixelKiln.Samples.Editor",
        "PixelKiln.Unity",
        "PixelKiln.Unity.Editor",
    ]
    built: dict[str, Path] = {"Unity.2D.Sprite.Editor": sprite}
    while pending:
        ready = [(d, s) for d, s in pending if all(r in built for r in d["references"])]
        assert ready, f"unresolvable asmdef references: {[d['name'] for d, _ in pending]}"
        for definition, sources in ready:
            refs = [f"-r:{built[r]}" for r in definition["references"]]
            if not definition.get("noEngineReferences"):
                refs.append(f"-r:{engine}")
                if definition.get("includePlatforms") == ["Editor"]:
                    refs.append(f"-r:{editor}")
            out = build / f"{definition['name']}.dll"
            _compile(out, sources, "-target:library", "-r:System.Core", *refs)
            built[definition["name"]] = out
            pending.remove((definition, sources))
