"""The Blender extension (engine_plugins/blender/pixelkiln).

Offline checks run everywhere: the manifest parses and lists exactly the wheels that
tools/build_blender_wheels.py produces for its pins, platforms and Python versions (the tag
check, on lists of wheel file names and on the fetched wheels when present), the client wheel
is reproducible and holds the client, and the add-on's error messages. The add-on itself runs
in Blender as a Python module (bpy 4.2, its own venv made by ``bash tools/setup_bpy_venv.sh``;
PIXELKILN_BPY_VENV points at another, e.g. bpy 5.3 on Python 3.13): a child process drives
its operators against a daemon child process (tests/blender/scenario.py), with the client
unpacked from its wheel, and reports what it saw; the tests here assert on that report.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import tomllib

from pixelkiln import PixelKilnError

from ..conftest import ROOT, start_served

pytestmark = pytest.mark.timeout(300)

EXTENSION = ROOT / "engine_plugins" / "blender" / "pixelkiln"
BPY_VENV = ROOT / os.environ.get("PIXELKILN_BPY_VENV", ".venv-bpy")
BPY_PYTHON = BPY_VENV / "bin" / "python"
NO_BPY = (
    f"no Blender-as-a-module venv at {BPY_VENV.name}: run `bash tools/setup_bpy_venv.sh` "
    "(bpy 4.2 on Python 3.11, about a minute) to run the Blender add-on tests"
)


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load("build_blender_wheels", ROOT / "tools" / "build_blender_wheels.py")


# --- offline: manifest, wheels and their tags, the client wheel ----------------------------


def test_manifest_parses_and_lists_the_wheels_the_build_script_produces(
    build: ModuleType,
) -> None:
    manifest = tomllib.loads((EXTENSION / "blender_manifest.toml").read_text())
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "pixelkiln"
    assert manifest["type"] == "add-on"
    # Blender 4.2 to 5.0 ship Python 3.11, 5.1 to 5.3 ship 3.13; max is exclusive.
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["blender_version_max"] == "5.4.0"
    assert build.PYTHON_VERSIONS == ("3.11", "3.13")
    assert build.BLENDER_PYTHON["5.0"] == "3.11" and build.BLENDER_PYTHON["5.1"] == "3.13"
    # The add-on talks to the daemon and writes PNG files (Save To).
    assert set(manifest["permissions"]) == {"network", "files"}
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert "GNU GENERAL PUBLIC LICENSE" in (EXTENSION / "LICENSE").read_text()
    assert "Version 3, 29 June 2007" in (EXTENSION / "LICENSE").read_text()
    assert manifest["platforms"] == list(build.PLATFORMS)
    # One wheel per pin and (platform, Python) pair, nothing else.
    assert build.manifest_problems() == [], "run: python tools/build_blender_wheels.py"
    listed = manifest["wheels"]
    projects = {build.Wheel.parse(w).project for w in listed}
    assert projects == {build.normalize(p) for p in [*build.REQUIREMENTS, "pixelkiln-client"]}
    assert f"./wheels/{build.client_wheel_name()}" in listed
    wheels_dir = EXTENSION / "wheels"
    if wheels_dir.is_dir():  # built here: what is on disk is what is listed, tags and all
        on_disk = sorted(f"./wheels/{p.name}" for p in wheels_dir.glob("*.whl"))
        assert on_disk == listed
        assert build.wheel_set_problems(on_disk) == []
        assert [p for w in on_disk for p in build.wheel_file_problems(EXTENSION / w)] == []


def test_wheel_check_names_each_missing_platform_and_python(build: ModuleType) -> None:
    listed = tomllib.loads((EXTENSION / "blender_manifest.toml").read_text())["wheels"]
    assert build.wheel_set_problems(listed) == []

    def problems(wheels: list[str]) -> list[str]:
        return list(build.wheel_set_problems(sorted(wheels)))

    # grpcio for Python 3.13 on Windows gone: exactly that pair is named.
    gap = [w for w in listed if not ("grpcio-" in w and "cp313" in w and "win_amd64" in w)]
    assert problems(gap) == ["grpcio==1.85.3: no wheel for (windows-x64, Python 3.13)"]
    # Only Blender 4's Python: every platform misses 3.13, and only grpcio (protobuf is abi3).
    no313 = [w for w in listed if "cp313" not in w]
    missing = problems(no313)
    assert len(missing) == len(build.PLATFORMS), missing
    assert all("Python 3.13" in p and p.startswith("grpcio==") for p in missing)
    # abi3 for an older Python covers newer ones, not the other way round.
    newer_abi3 = [w.replace("cp310-abi3", "cp312-abi3") for w in listed]
    assert all("Python 3.11" in p for p in problems(newer_abi3))
    # A wheel nothing needs, a wrong version, a too new glibc or macOS, and order.
    extra = [*listed, "./wheels/requests-2.32.3-py3-none-any.whl"]
    assert problems(extra) == ["requests-2.32.3-py3-none-any.whl: not required by any pin"]
    old = [w.replace("protobuf-7.36.2", "protobuf-5.29.0") for w in listed]
    assert any(p.startswith("protobuf==7.36.2: no wheel for") for p in problems(old))
    too_new = [w.replace("manylinux2014_x86_64.manylinux_2_17", "manylinux_2_34") for w in listed]
    assert any("(linux-x64, Python 3.11)" in p for p in problems(too_new))
    mac15 = [w.replace("macosx_11_0_universal2", "macosx_15_0_universal2") for w in listed]
    assert any("(macos-arm64, Python 3.11)" in p for p in problems(mac15))
    twice = [*listed, "./wheels/grpcio-1.85.3-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert any("2 wheels for (linux-x64, Python 3.11)" in p for p in problems(twice))
    assert "the wheels list is not sorted" in build.wheel_set_problems(listed[::-1])
    assert any("not a wheel file name" in p for p in problems(["./wheels/grpcio.whl"]))


def test_wheel_file_tags_must_match_its_name(build: ModuleType, tmp_path: Path) -> None:
    good = build.build_client_wheel(tmp_path)
    assert build.wheel_file_problems(good) == []
    liar = tmp_path / "grpcio-1.85.3-cp313-cp313-win_amd64.whl"
    with zipfile.ZipFile(liar, "w") as zf:
        zf.writestr(
            "grpcio-1.85.3.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: cp311-cp311-win_amd64\n"
        )
    assert "cp311-cp311-win_amd64" in build.wheel_file_problems(liar)[0]


def test_manifest_rewrite_and_zip_are_deterministic(
    build: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = tmp_path / "pixelkiln"
    shutil.copytree(EXTENSION, ext, ignore=shutil.ignore_patterns("wheels", "__pycache__"))
    manifest = ext / "blender_manifest.toml"
    listed = tomllib.loads(manifest.read_text())["wheels"]
    assert build.rewrite_manifest(listed, manifest) is False  # already as the script writes it
    assert build.rewrite_manifest([], manifest) is True
    assert tomllib.loads(manifest.read_text())["wheels"] == []
    manifest.write_text(manifest.read_text().replace('"windows-x64"', '"windows-arm64"'))
    assert build.rewrite_manifest([], manifest) is True  # platforms come from PLATFORMS
    assert tomllib.loads(manifest.read_text())["platforms"] == list(build.PLATFORMS)
    monkeypatch.setattr(build, "EXTENSION_DIR", ext)
    monkeypatch.setattr(build, "MANIFEST", manifest)
    first = build.build_zip(tmp_path / "a").read_bytes()
    second = build.build_zip(tmp_path / "b").read_bytes()
    assert first == second


def test_client_wheel_is_reproducible_and_holds_the_client(
    build: ModuleType, tmp_path: Path
) -> None:
    first = build.build_client_wheel(tmp_path / "a")
    second = build.build_client_wheel(tmp_path / "b")
    assert first.name == "pixelkiln_client-0.1.0-py3-none-any.whl" == build.client_wheel_name()
    assert first.read_bytes() == second.read_bytes()
    client = ROOT / "clients" / "python" / "pixelkiln"
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        info = "pixelkiln_client-0.1.0.dist-info"
        package = sorted(n for n in names if not n.startswith(info))
        want = sorted(
            f"pixelkiln/{p.relative_to(client).as_posix()}"
            for p in client.rglob("*")
            if p.suffix in (".py", ".typed")
            and "__pycache__" not in p.parts
            and p.name
            not in ("cli.py", "_cli_args.py", "_cli_parts.py")  # the command line needs the server
        )
        assert package == want and "pixelkiln/v1/generator_pb2.py" in package
        for name in package:  # byte for byte the sources of this commit
            assert zf.read(name) == (client.parent / name).read_bytes(), name
        metadata = zf.read(f"{info}/METADATA").decode()
        assert "Name: pixelkiln-client" in metadata and "Requires-Dist: protobuf" in metadata
        assert "Tag: py3-none-any" in zf.read(f"{info}/WHEEL").decode()
        record = zf.read(f"{info}/RECORD").decode().splitlines()
        assert sorted(r.split(",")[0] for r in record) == sorted(names)
        for row in record:  # the hashes pip and Blender's wheel manager read
            name, digest, size = row.split(",")
            if name.endswith("RECORD"):
                continue
            data = zf.read(name)
            expected = hashlib.sha256(data).digest()
            assert digest == "sha256=" + _b64(expected) and int(size) == len(data)


def _b64(digest: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_the_addon_has_no_sys_path_hack() -> None:
    for module in EXTENSION.glob("*.py"):
        assert "sys.path" not in module.read_text(), module.name
    assert not (EXTENSION / "vendor").exists()


def test_error_messages_say_what_to_do() -> None:
    bridge = load("pixelkiln_blender_bridge", EXTENSION / "bridge.py")
    addr = "127.0.0.1:50051"

    def say(code: grpc.StatusCode, message: str) -> str:
        return str(bridge.describe_error(PixelKilnError(code, message), addr))

    refused = say(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50051: "
        "Failed to connect to remote host: Connection refused",
    )
    assert "No PixelKiln daemon at 127.0.0.1:50051" in refused
    assert "pixelkiln serve" in refused
    wrong = say(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:50052: "
        "Failed parsing HTTP/2 (Expected SETTINGS frame as the first frame, got frame type 79)",
    )
    assert "not with gRPC" in wrong and "wrong port" in wrong
    invalid = say(grpc.StatusCode.INVALID_ARGUMENT, "width: must be a multiple of 8, got 100")
    assert invalid.endswith("width: must be a multiple of 8, got 100")
    assert "log" in say(grpc.StatusCode.INTERNAL, "internal error")
    assert "busy" in say(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
    assert bridge.check_address("localhost:99999") is not None
    assert bridge.check_address("[::1]:50051") is None
    assert bridge.check_address("render-box.local:50051") is None


# --- in Blender (bpy as a module) -----------------------------------------------------------


def blender_ext_cli() -> Path:
    found = sorted(
        BPY_VENV.glob(
            "lib/python3.*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"
        )
    )
    if not found:
        pytest.skip(NO_BPY)
    return found[-1]


def bpy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="session")
def client_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client wheel as Blender installs it: built, then unpacked into a site folder."""
    build = load("build_blender_wheels", ROOT / "tools" / "build_blender_wheels.py")
    folder = tmp_path_factory.mktemp("client_wheel")
    with zipfile.ZipFile(build.build_client_wheel(folder)) as zf:
        zf.extractall(folder / "site")
    return folder / "site"


def test_blender_validates_the_extension() -> None:
    """Blender's own validator (what `blender --command extension validate` runs)."""
    if not BPY_PYTHON.exists():
        pytest.skip(NO_BPY)
    proc = subprocess.run(
        [str(BPY_PYTHON), str(blender_ext_cli()), "validate", str(EXTENSION)],
        capture_output=True,
        text=True,
        timeout=120,
        env=bpy_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def daemon_address() -> Iterator[str]:
    if not BPY_PYTHON.exists():
        pytest.skip(NO_BPY)
    proc, address = start_served()
    yield address
    proc.terminate()
    proc.wait(timeout=30)


def run_bpy(
    script: str, *args: str, env: dict[str, str] | None = None, site: Path | None = None
) -> None:
    """Run a tests/blender script in the bpy venv; ``site``: the unpacked client wheel."""
    env = dict(env or bpy_env())
    if site is not None:
        env["PIXELKILN_CLIENT_SITE"] = str(site)
    proc = subprocess.run(
        [str(BPY_PYTHON), str(Path(__file__).with_name(script)), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def report(
    daemon_address: str, client_site: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("blender") / "report.json"
    run_bpy("scenario.py", daemon_address, str(out), site=client_site)
    return dict(json.loads(out.read_text()))


def step(report: dict[str, Any], name: str) -> dict[str, Any]:
    result = report[name]
    assert "exception" not in result, f"step {name} raised:\n{result['exception']}"
    return dict(result)


PRINCIPLED = {
    "Base Color": ["TEX_IMAGE", "albedo", "sRGB"],
    "Roughness": ["TEX_IMAGE", "roughness", "Non-Color"],
    "Normal": ["NORMAL_MAP", "normal", "Non-Color"],
}


def test_addon_registers_with_the_client_from_its_wheel_and_a_timer(
    report: dict[str, Any], client_site: Path
) -> None:
    r = step(report, "register")
    assert r["timer_registered"]
    assert Path(r["client_file"]).is_relative_to(client_site)
    assert set(r["operators"]) >= {
        "check",
        "generate",
        "cancel",
        "make_material",
        "seamless_on_selected",
        "live_start",
        "live_stop",
    }
    r = step(report, "unregister")
    assert not r["timer_registered"] and not r["ops_left"]


def test_address_and_token_live_in_the_preferences(report: dict[str, Any]) -> None:
    r = step(report, "preferences")
    assert r["address_default"] == "127.0.0.1:50051"
    assert r["token_subtype"] == "PASSWORD" and r["tls_ca_subtype"] == "FILE_PATH"
    # The scene keeps only a hidden, empty slot for what old versions saved there.
    assert r["scene_address_hidden"] and r["scene_address_default"] == ""


def test_an_old_blend_with_an_address_yields_to_the_preferences(report: dict[str, Any]) -> None:
    r = step(report, "migrate")
    assert r["other_saved_with_old"] and r["same_saved_with_old"]
    assert r["other_level"] == "WARNING"
    assert "named the daemon 10.9.8.7:50051" in r["other_status"]
    assert "Preferences > Add-ons > PixelKiln" in r["other_status"]
    assert r["other_scene_after"] == r["same_scene_after"] == ""
    assert r["same_status"] == ""  # the same address: nothing to say
    # Opened without the load handler: the operator drops it and asks the preferences' daemon.
    assert r["operator_health"].startswith("SERVING"), r["operator_health"]
    assert r["operator_scene_after"] == ""
    assert not r["resaved_has_old"]


def test_health_shows_the_served_model(report: dict[str, Any]) -> None:
    assert step(report, "health")["health"].startswith("SERVING tiny-random on cpu")


def test_generate_fills_a_packed_image_named_after_the_prompt(report: dict[str, Any]) -> None:
    r = step(report, "generate")
    assert r["operator"] == ["FINISHED"]
    assert r["returned_while_busy"], "the operator must return before the network work ends"
    assert r["finished"] and not r["busy"]
    assert r["level"] == "INFO" and r["status"].startswith("Done: red brick wall 64x128")
    assert r["image"] == "red brick wall"
    assert r["size"] == [64, 128]
    assert r["packed"] and r["fake_user"]
    assert r["mean"] > 0.01  # not the black placeholder
    assert r["seed"] == "7" and r["recipe_width"] == 64
    assert r["maps"] == {
        "normal": [[64, 128], "Non-Color"],
        "roughness": [[64, 128], "Non-Color"],
    }
    assert r["previews"] and all(size == [64, 128] for size in r["previews"])
    # Saved to disk too, through a temporary file that was renamed (none left behind).
    assert r["saved"] == [
        "red brick wall.png",
        "red brick wall_normal.png",
        "red brick wall_roughness.png",
    ]
    reloaded = step(report, "save_reload")
    assert reloaded == {**reloaded, "image_kept": True, "packed": True, "size": [64, 128]}


def test_make_material_wires_the_maps_into_a_principled_bsdf(report: dict[str, Any]) -> None:
    r = step(report, "make_material")
    assert r["new"] == ["red brick wall"]
    assert {k: r[k] for k in PRINCIPLED} == PRINCIPLED


def test_seamless_texture_goes_onto_the_selected_object(report: dict[str, Any]) -> None:
    r = step(report, "seamless")
    assert r["finished"] and r["level"] == "INFO", r["status"]
    assert r["recipe_tiling"] == "xy"
    assert r["material_before"] == "Material" and r["material"] == "mossy cobblestone"
    assert "on Cube" in r["status"]
    assert {k: r[k] for k in PRINCIPLED} == PRINCIPLED


def test_batch_of_transparent_sprites(report: dict[str, Any]) -> None:
    r = step(report, "batch")
    assert r["finished"] and r["level"] == "INFO", r["status"]
    assert r["images"] == [[[64, 64], True, "7"], [[64, 64], True, "8"]]
    assert r["alpha_linked"]
    # No maps were asked for: the material says which are missing and how to get them.
    assert r["material_level"] == "WARNING"
    assert "no roughness or normal map" in r["material_status"]


def test_invalid_width_is_a_message_not_an_exception(report: dict[str, Any]) -> None:
    r = step(report, "invalid_width")
    assert r["finished"] and not r["busy"]
    assert r["level"] == "ERROR"
    assert r["status"].startswith("The daemon refused the request: width")
    assert "multiple of 8" in r["status"] and "100" in r["status"]
    assert r["leftover_images"] == []  # the placeholder went away


def test_daemon_down_wrong_port_and_bad_address_say_what_to_do(report: dict[str, Any]) -> None:
    down = step(report, "daemon_down")
    assert down["finished"] and down["level"] == "ERROR"
    assert down["status"].startswith("No PixelKiln daemon at 127.0.0.1:")
    assert "pixelkiln serve" in down["status"]
    assert down["health"] == down["status"]
    wrong = step(report, "wrong_port")
    assert wrong["level"] == "ERROR" and "not with gRPC" in wrong["status"]
    bad = step(report, "bad_address")
    assert bad["level"] == "ERROR" and "is not an address" in bad["status"]
    assert bad["raised"] and "is not an address" in bad["raised"]  # bpy.ops' form of report()


def test_cancel_stops_the_generation_and_drops_the_placeholder(report: dict[str, Any]) -> None:
    r = step(report, "cancel")
    assert r["saw_progress"] and r["finished"] and not r["busy"]
    assert r["status"] == "Cancelled."
    assert r["leftover_images"] == []


def test_panels_draw_with_real_properties_operators_and_icons(report: dict[str, Any]) -> None:
    r = step(report, "draw")
    for panel in ("PIXELKILN_PT_image", "PIXELKILN_PT_shader"):
        idle, busy = r[panel], r[f"{panel}_busy"]
        assert "operator pixelkiln.generate" in idle and "operator pixelkiln.cancel" in busy
        assert any(line.startswith("progress") for line in busy)
        assert "operator pixelkiln.make_material" in idle
        assert "operator pixelkiln.seamless_on_selected" in idle
    assert "operator pixelkiln.live_start" in r["PIXELKILN_PT_image_live"]
    assert "operator pixelkiln.live_stop" in r["PIXELKILN_PT_image_live_busy"]


def test_live_mode_sends_painted_changes_only(report: dict[str, Any]) -> None:
    r = step(report, "live")
    assert r["first_frame"] and r["second_frame"], r["status"]
    assert r["sent_first"] == 1
    assert r["sent_unchanged"] == 1, "an unchanged image must not be sent again"
    assert r["sent_after_paint"] == 2
    assert r["third_frame_after_prompt_edit"] and r["sent_after_prompt_edit"] == 3
    assert r["result"] == "sketch (live)" and r["result_size"] == [64, 64]
    assert r["result_mean"] > 0.01
    assert r["stopped"] and not r["running_after_stop"]


def test_extension_zip_installs_and_runs_on_its_bundled_wheels(
    build: ModuleType, daemon_address: str, tmp_path: Path
) -> None:
    """Blender's own installer (Install from Disk) on the zip; grpcio and protobuf come only
    from the zip's wheels. Needs the wheels: `python tools/build_blender_wheels.py`."""
    manifest = tomllib.loads((EXTENSION / "blender_manifest.toml").read_text())
    if not all((EXTENSION / w).is_file() for w in manifest["wheels"]):
        pytest.skip("wheels not built: run `python tools/build_blender_wheels.py` (~53 MB)")
    archive = build.build_zip(tmp_path / "dist")
    out = tmp_path / "install.json"
    env = {**bpy_env(), "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")}
    run_bpy("install_check.py", str(archive), daemon_address, str(out), env=env)
    r = json.loads(out.read_text())
    assert "exception" not in r, r["exception"]
    assert r["install"] == ["FINISHED"] and r["enabled"]
    site = tmp_path / "blender-user" / "extensions" / ".local"
    assert Path(r["grpc_file"]).is_relative_to(site)
    assert Path(r["protobuf_file"]).is_relative_to(site)
    assert Path(r["client_file"]).is_relative_to(site)  # the client wheel, no sys.path insert
    assert r["finished"] and r["status"].startswith("Done: "), r["status"]
    assert r["size"] == [64, 64]
    assert r["disabled"] and r["unregistered"]
