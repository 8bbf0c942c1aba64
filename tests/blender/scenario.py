"""Drives the Blender add-on headless, in the bpy venv (Blender as a Python module).

    .venv-bpy/bin/python tests/blender/scenario.py ADDRESS REPORT.json

Loads engine_plugins/blender/pixelkiln from the source tree, with the PixelKiln client from
the wheel tools/build_blender_wheels.py builds, unpacked into PIXELKILN_CLIENT_SITE (as
Blender unpacks an extension's wheels into its site-packages), registers it, runs its
operators against the daemon at ADDRESS and writes what it saw to
REPORT.json; test_blender_addon.py (main venv) asserts on the report. Each step records its
own failure, so one broken step does not hide the others.

Timers never fire in background mode: the add-on's ``runtime.pump()`` runs its timer
callback until the jobs are done.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "engine_plugins" / "blender" / "pixelkiln"
# Blender imports an extension as bl_ext.<repo>.pixelkiln; any name but the client's works.
PACKAGE = "pixelkiln_blender_addon"
# The unpacked client wheel (the test makes it); else the client's source folder.
CLIENT_SITE = os.environ.get("PIXELKILN_CLIENT_SITE") or str(ROOT / "clients" / "python")
sys.path.insert(0, CLIENT_SITE)


def load_addon() -> Any:
    spec = importlib.util.spec_from_file_location(
        PACKAGE, EXTENSION / "__init__.py", submodule_search_locations=[str(EXTENSION)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scenario:
    def __init__(self, address: str) -> None:
        self.address = address
        self.report: dict[str, Any] = {}
        self.addon = load_addon()
        self.runtime = sys.modules[f"{PACKAGE}.runtime"]
        self.images = sys.modules[f"{PACKAGE}.images"]

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        started = time.perf_counter()
        try:
            self.report[name] = fn()
        except Exception:  # noqa: BLE001 - recorded for the test to show
            self.report[name] = {"exception": traceback.format_exc()}
        finally:
            self.runtime.pump(timeout=10)  # leave no job behind for the next step
            self.report[name]["seconds"] = round(time.perf_counter() - started, 2)

    def run(self, steps: list[tuple[str, Callable[[], dict[str, Any]]]], report: Path) -> None:
        """Each step in order, then the report as JSON for the test to read."""
        for name, fn in steps:
            self.step(name, fn)
        report.write_text(json.dumps(self.report, indent=1, default=str))

    @property
    def settings(self) -> Any:
        return bpy.context.scene.pixelkiln

    @property
    def state(self) -> Any:
        return self.runtime.state()

    def addon_prefs(self) -> Any:
        """The add-on's preferences (Blender makes the entry when it enables an add-on;
        loaded by hand, the scenario makes it)."""
        addons = bpy.context.preferences.addons
        entry = addons.get(PACKAGE) or addons.new()
        entry.module = PACKAGE
        return entry.preferences

    def configure(self, address: str | None = None, **values: Any) -> None:
        self.addon_prefs().address = address or self.address
        defaults = {
            "prompt": "red brick wall",
            "width": 64,
            "height": 128,
            "random_seed": False,
            "seed": "7",
            "steps": 2,
            "count": 1,
            "tiling": "none",
            "transparent": False,
            "map_normal": True,
            "map_height": False,
            "map_roughness": True,
            "map_ao": False,
            "output_dir": "",
        }
        for key, value in {**defaults, **values}.items():
            setattr(self.settings, key, value)

    def status(self) -> dict[str, Any]:
        return {"status": self.state.status, "level": self.state.level, "busy": self.state.busy}

    # --- steps --------------------------------------------------------------------------

    def register(self) -> dict[str, Any]:
        self.addon.register()
        return {
            "timer_registered": bpy.app.timers.is_registered(self.runtime.tick),
            "operators": sorted(
                name for name in dir(bpy.ops.pixelkiln) if not name.startswith("_")
            ),
            "client_file": sys.modules["pixelkiln"].__file__,
        }

    def preferences(self) -> dict[str, Any]:
        prefs = self.addon_prefs()
        rna = type(prefs).bl_rna.properties
        scene_rna = self.settings.bl_rna.properties
        return {
            "address_default": rna["address"].default,
            "token_subtype": rna["token"].subtype,
            "tls_ca_subtype": rna["tls_ca"].subtype,
            "scene_address_hidden": scene_rna["address"].is_hidden,
            "scene_address_default": scene_rna["address"].default,
        }

    def migrate(self, blend: Path) -> dict[str, Any]:
        """A .blend saved by the version that kept the address in the scene: the same
        IDProperty (scene["pixelkiln"]["address"]) the old PropertyGroup wrote."""
        self.configure()  # the preferences say: the test's daemon
        out: dict[str, Any] = {}
        for case, old in (("other", "10.9.8.7:50051"), ("same", self.address)):
            bpy.context.scene.pixelkiln.address = old
            self.runtime.set_status("")
            bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
            out[f"{case}_saved_with_old"] = old.encode() in blend.read_bytes()
            bpy.ops.wm.open_mainfile(filepath=str(blend))  # load_post: the add-on migrates
            out[f"{case}_status"], out[f"{case}_level"] = self.state.status, self.state.level
            out[f"{case}_scene_after"] = bpy.context.scene.pixelkiln.address
        # Opened before the add-on was enabled (no load_post seen): the operator migrates.
        bpy.context.scene.pixelkiln.address = "10.9.8.7:50051"
        bpy.ops.pixelkiln.check()
        self.runtime.pump()
        out["operator_health"] = self.state.health
        out["operator_scene_after"] = bpy.context.scene.pixelkiln.address
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
        out["resaved_has_old"] = b"10.9.8.7" in blend.read_bytes()
        return out

    def health(self) -> dict[str, Any]:
        self.configure()
        bpy.ops.pixelkiln.check()
        self.runtime.pump()
        return {"health": self.state.health}

    def generate(self, out_dir: Path) -> dict[str, Any]:
        self.configure(output_dir=str(out_dir))
        previews: list[tuple[int, int]] = []
        write = self.images.write_rgba8

        def counting_write(img: Any, data: bytes, width: int, height: int) -> None:
            previews.append((width, height))
            write(img, data, width, height)

        self.images.write_rgba8 = counting_write
        try:
            result = bpy.ops.pixelkiln.generate()
            busy_after_op = self.state.busy
            finished = self.runtime.pump(timeout=60)
        finally:
            self.images.write_rgba8 = write
        name = self.state.last_image
        img = bpy.data.images.get(name)
        maps = self.images.maps_of(img) if img is not None else {}
        return {
            "operator": sorted(result),
            "returned_while_busy": busy_after_op,
            "finished": finished,
            **self.status(),
            "image": name,
            "size": list(img.size) if img else None,
            "packed": bool(img and img.packed_file),
            "fake_user": bool(img and img.use_fake_user),
            "mean": float(np.mean(_pixels(img))) if img else None,
            "seed": img.get("pixelkiln_seed") if img else None,
            "recipe_width": json.loads(img["pixelkiln_recipe"]).get("request", {}).get("width")
            if img
            else None,
            "maps": {k: [list(m.size), m.colorspace_settings.name] for k, m in maps.items()},
            "previews": previews,
            "saved": sorted(p.name for p in out_dir.iterdir()),
        }

    def make_material(self) -> dict[str, Any]:
        name = self.state.last_image
        before = set(bpy.data.materials.keys())
        bpy.ops.pixelkiln.make_material(image=name)
        new = sorted(set(bpy.data.materials.keys()) - before)
        return {"new": new, **(wiring(bpy.data.materials[new[0]]) if new else {})}

    def seamless(self) -> dict[str, Any]:
        self.configure(prompt="mossy cobblestone", width=64, height=64)
        for obj in bpy.context.scene.objects:
            obj.select_set(obj.name == "Cube")
        cube = bpy.data.objects["Cube"]
        before = cube.active_material.name if cube.active_material else None
        bpy.ops.pixelkiln.seamless_on_selected()
        finished = self.runtime.pump(timeout=60)
        mat = cube.active_material
        albedo = bpy.data.images.get(self.state.last_image)
        recipe = json.loads(albedo["pixelkiln_recipe"]) if albedo else {}
        return {
            "finished": finished,
            **self.status(),
            "material_before": before,
            "material": mat.name if mat else None,
            "recipe_tiling": recipe.get("request", {}).get("tiling"),
            **(wiring(mat) if mat else {}),
        }

    def batch(self) -> dict[str, Any]:
        """Two transparent sprites, no maps: two images; the material uses the alpha."""
        self.configure(
            prompt="gold coin sprite",
            width=64,
            height=64,
            count=2,
            transparent=True,
            map_normal=False,
            map_roughness=False,
        )
        bpy.ops.pixelkiln.generate()
        finished = self.runtime.pump(timeout=60)
        status = self.status()
        names = ["gold coin sprite", "gold coin sprite 2"]
        imgs = [bpy.data.images.get(n) for n in names]
        bpy.ops.pixelkiln.make_material(image=names[0])
        mat = bpy.data.materials.get("gold coin sprite")
        bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED") if mat else None
        return {
            "finished": finished,
            **status,
            "images": [
                [list(i.size), bool(i.packed_file), i.get("pixelkiln_seed")] if i else None
                for i in imgs
            ],
            "alpha_linked": bool(bsdf and bsdf.inputs["Alpha"].links),
            "material_status": self.state.status,
            "material_level": self.state.level,
        }

    def invalid_width(self) -> dict[str, Any]:
        self.configure(width=100)
        images_before = set(bpy.data.images.keys())
        bpy.ops.pixelkiln.generate()  # must not raise: the error arrives later, as a message
        finished = self.runtime.pump(timeout=30)
        return {
            "finished": finished,
            **self.status(),
            "leftover_images": sorted(set(bpy.data.images.keys()) - images_before),
        }

    def daemon_down(self) -> dict[str, Any]:
        self.configure(address=f"127.0.0.1:{free_port()}")
        bpy.ops.pixelkiln.generate()
        finished = self.runtime.pump(timeout=30)
        out = {"finished": finished, **self.status()}
        bpy.ops.pixelkiln.check()
        self.runtime.pump(timeout=30)
        out["health"] = self.state.health
        return out

    def wrong_port(self) -> dict[str, Any]:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            self.configure(address=f"127.0.0.1:{server.server_address[1]}")
            bpy.ops.pixelkiln.generate()
            finished = self.runtime.pump(timeout=30)
            return {"finished": finished, **self.status()}
        finally:
            server.shutdown()

    def bad_address(self) -> dict[str, Any]:
        self.configure(address="localhost:99999")
        try:
            bpy.ops.pixelkiln.generate()
            raised = None
        except RuntimeError as exc:  # bpy.ops turns an operator's ERROR report into this
            raised = str(exc)
        return {"raised": raised, **self.status()}

    def cancel(self) -> dict[str, Any]:
        self.configure(width=256, height=256, steps=30, map_normal=False, map_roughness=False)
        images_before = set(bpy.data.images.keys())
        bpy.ops.pixelkiln.generate()
        accepted = self.runtime.pump(until=lambda: self.state.status.startswith("Step"))
        bpy.ops.pixelkiln.cancel()
        finished = self.runtime.pump(timeout=30)
        return {
            "saw_progress": accepted,
            "finished": finished,
            **self.status(),
            "leftover_images": sorted(set(bpy.data.images.keys()) - images_before),
        }

    def live(self) -> dict[str, Any]:
        self.configure(prompt="lava rock", steps=2)
        source = bpy.data.images.new("sketch", 64, 64, alpha=True)
        source.pixels.foreach_set(np.full(64 * 64 * 4, 0.5, dtype=np.float32))
        self.settings.live_source = source
        self.settings.live_interval = 0.05
        bpy.ops.pixelkiln.live_start()
        job = self.runtime.BRIDGE.active("live")[0]
        first = self.runtime.pump(until=lambda: self.state.live_frames >= 1, timeout=30)
        sent_first = job.sent
        # Keep polling an unchanged image: nothing more may be sent.
        self.runtime.pump(until=lambda: False, timeout=0.4)
        sent_unchanged = job.sent
        # "Paint": change some pixels; the next poll sends them.
        pixels = np.full(64 * 64 * 4, 0.5, dtype=np.float32)
        pixels[: 64 * 16 * 4] = 1.0
        source.pixels.foreach_set(pixels)
        second = self.runtime.pump(until=lambda: self.state.live_frames >= 2, timeout=30)
        sent_after_paint = job.sent
        # Edit the prompt while live: it goes out with no new image.
        self.settings.prompt = "ice crystals"
        third = self.runtime.pump(until=lambda: self.state.live_frames >= 3, timeout=30)
        result = bpy.data.images.get(self.state.live_result)
        out = {
            "third_frame_after_prompt_edit": third,
            "sent_after_prompt_edit": job.sent,
            "first_frame": first,
            "second_frame": second,
            "sent_first": sent_first,
            "sent_unchanged": sent_unchanged,
            "sent_after_paint": sent_after_paint,
            "frames": self.state.live_frames,
            "result": self.state.live_result,
            "result_size": list(result.size) if result else None,
            "result_mean": float(np.mean(_pixels(result))) if result else None,
            **self.status(),
        }
        bpy.ops.pixelkiln.live_stop()
        out["stopped"] = self.runtime.pump(timeout=10)
        out["running_after_stop"] = self.state.live_running
        return out

    def save_reload(self, blend: Path) -> dict[str, Any]:
        name = self.report["generate"]["image"]
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        img = bpy.data.images.get(name)
        return {
            "image_kept": img is not None,
            "packed": bool(img and img.packed_file),
            "size": list(img.size) if img else None,
        }

    def draw(self) -> dict[str, Any]:
        panels = sys.modules[f"{PACKAGE}.panels"]
        out: dict[str, Any] = {}
        for busy in (False, True):
            self.state.busy = busy
            self.state.live_running = busy
            self.runtime.set_status("a long status message " * 6, "ERROR" if busy else "INFO")
            for cls in panels.CLASSES:
                log: list[str] = []
                fake = types.SimpleNamespace(
                    layout=FakeLayout(log),
                    settings_and_state=lambda _ctx: (self.settings, self.state),
                )
                cls.draw(fake, bpy.context)
                out[f"{cls.__name__}{'_busy' if busy else ''}"] = log
        self.state.busy = self.state.live_running = False
        return out

    def unregister(self) -> dict[str, Any]:
        self.addon.unregister()
        return {
            "timer_registered": bpy.app.timers.is_registered(self.runtime.tick),
            "ops_left": hasattr(bpy.types, "PIXELKILN_OT_generate"),
        }


class FakeLayout:
    """Stands in for UILayout (there is none without a window): records what a panel draws
    and checks every call against Blender's own UILayout API (function and keyword names),
    every property against its owner and every operator against bpy.ops."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __getattr__(self, name: str) -> Any:
        functions = bpy.types.UILayout.bl_rna.functions
        if name not in functions:
            raise AttributeError(f"UILayout has no function {name!r}")
        params = set(functions[name].parameters.keys())

        def call(*args: Any, **kwargs: Any) -> Any:
            unknown = set(kwargs) - params
            if unknown:
                raise TypeError(f"UILayout.{name}() has no parameter(s) {sorted(unknown)}")
            icons = functions["label"].parameters["icon"].enum_items.keys()
            if "icon" in kwargs and kwargs["icon"] not in icons:
                raise ValueError(f"no icon {kwargs['icon']!r}")
            if name in ("prop", "template_ID"):
                data, prop = args[0], args[1]
                if prop not in data.bl_rna.properties:
                    raise AttributeError(f"{type(data).__name__} has no property {prop!r}")
                self.log.append(f"{name} {prop}")
            elif name == "operator":
                group, op = args[0].split(".")
                if not hasattr(getattr(bpy.ops, group), op):
                    raise AttributeError(f"no operator {args[0]}")
                self.log.append(f"operator {args[0]}")
                return types.SimpleNamespace()
            elif name in ("label", "progress"):
                self.log.append(f"{name} {kwargs.get('text', '')}".strip())
            return self

        return call


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _pixels(img: Any) -> np.ndarray:
    buf = np.empty(int(img.size[0]) * int(img.size[1]) * 4, dtype=np.float32)
    img.pixels.foreach_get(buf)
    return buf


def wiring(mat: Any) -> dict[str, Any]:
    """What feeds the Principled BSDF: {input: [node type, image, colorspace]}."""
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    out: dict[str, Any] = {}
    for socket_name in ("Base Color", "Roughness", "Normal"):
        links = bsdf.inputs[socket_name].links
        if not links:
            out[socket_name] = None
            continue
        node = links[0].from_node
        if node.type == "NORMAL_MAP":
            tex_links = node.inputs["Color"].links
            tex = tex_links[0].from_node if tex_links else None
            out[socket_name] = [
                "NORMAL_MAP",
                tex.image.get("pixelkiln_role") if tex and tex.image else None,
                tex.image.colorspace_settings.name if tex and tex.image else None,
            ]
        else:
            image = getattr(node, "image", None)
            out[socket_name] = [
                node.type,
                image.get("pixelkiln_role") if image else None,
                image.colorspace_settings.name if image else None,
            ]
    return out


def main() -> None:
    address, report_path = sys.argv[1], Path(sys.argv[2])
    scenario = Scenario(address)
    with tempfile.TemporaryDirectory() as tmp:
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("register", scenario.register),
            ("preferences", scenario.preferences),
            ("health", scenario.health),
            ("generate", lambda: scenario.generate(Path(tmp) / "out")),
            ("make_material", scenario.make_material),
            ("seamless", scenario.seamless),
            ("batch", scenario.batch),
            ("invalid_width", scenario.invalid_width),
            ("daemon_down", scenario.daemon_down),
            ("wrong_port", scenario.wrong_port),
            ("bad_address", scenario.bad_address),
            ("cancel", scenario.cancel),
            ("live", scenario.live),
            ("draw", scenario.draw),
            ("save_reload", lambda: scenario.save_reload(Path(tmp) / "scene.blend")),
            ("migrate", lambda: scenario.migrate(Path(tmp) / "old.blend")),
            ("unregister", scenario.unregister),
        ]
        (Path(tmp) / "out").mkdir()
        scenario.run(steps, report_path)


if __name__ == "__main__":
    main()
