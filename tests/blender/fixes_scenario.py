"""Save To, seeds and a daemon lost mid-request, headless in the bpy venv.

    .venv-bpy/bin/python tests/blender/fixes_scenario.py ADDRESS DAEMON_PID WORKDIR REPORT.json

Save To never replaces a file (a freed datablock name used to overwrite the last result's
PNGs) and refuses ``//`` in a .blend that was never saved; the seed field takes any uint64;
a daemon killed (SIGKILL, DAEMON_PID) during a generation is reported as lost, not as "wrong
port". The daemon step comes last: the daemon does not survive it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario import Scenario  # noqa: E402 - after the path insert


class Fixes(Scenario):
    def generate_now(self) -> dict[str, Any]:
        """Run the generate operator to its end; what bpy.ops raised (an ERROR report)."""
        try:
            bpy.ops.pixelkiln.generate()
            raised = None
        except RuntimeError as exc:
            raised = str(exc)
        finished = self.runtime.pump(timeout=60)
        img = bpy.data.images.get(self.state.last_image)
        return {
            "raised": raised,
            "finished": finished,
            **self.status(),
            "seed": img.get("pixelkiln_seed") if img else None,
        }

    def relative_unsaved(self, work: Path) -> dict[str, Any]:
        """``//pk_out`` in a .blend never saved: refused (it would land in the working
        directory); once the .blend is saved, it lands next to it."""
        cwd = work / "cwd"
        cwd.mkdir()
        os.chdir(cwd)
        self.configure(output_dir="//pk_out", map_normal=False, map_roughness=False)
        images_before = set(bpy.data.images.keys())
        out: dict[str, Any] = {"blend_path": bpy.data.filepath, **self.generate_now()}
        out["leftover_images"] = sorted(set(bpy.data.images.keys()) - images_before)
        out["in_cwd"] = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
        bpy.ops.wm.save_as_mainfile(filepath=str(work / "saved.blend"), compress=False)
        self.configure(output_dir="//pk_out", map_normal=False, map_roughness=False)
        out["saved"] = self.generate_now()
        folder = work / "pk_out"
        out["next_to_blend"] = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return out

    def no_overwrite(self, folder: Path) -> dict[str, Any]:
        """The repro: "stone" seed 1 saved, its images removed (File > New frees the names
        too), "stone" seed 2: new files beside the old ones, which stay as they were."""
        self.configure(prompt="stone", width=64, height=64, seed="1", output_dir=str(folder))
        first = self.generate_now()
        before = {p.name: _sha(p) for p in folder.iterdir()}
        for img in [i for i in bpy.data.images if i.name.startswith("stone")]:
            bpy.data.images.remove(img)
        self.configure(prompt="stone", width=64, height=64, seed="2", output_dir=str(folder))
        second = self.generate_now()
        after = {p.name: _sha(p) for p in folder.iterdir()}
        return {
            "first": first,
            "second": second,
            "before": sorted(before),
            "after": sorted(after),
            "unchanged": all(after.get(name) == digest for name, digest in before.items()),
            "image_path": bpy.data.images["stone"].filepath_raw,
        }

    def big_seed(self, blend: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for text in ("3000000000", str(2**64 - 1)):
            try:
                self.configure(seed=text, map_normal=False, map_roughness=False)
            except (TypeError, ValueError) as exc:  # an IntProperty refuses both
                out[text] = {"set_failed": f"{type(exc).__name__}: {exc}"}
                continue
            out[text] = {"field": self.settings.seed, **self.generate_now()}
        try:
            self.configure(seed="12abc")
            out["not_a_number"] = self.generate_now()
        except (TypeError, ValueError) as exc:
            out["not_a_number"] = {"set_failed": f"{type(exc).__name__}: {exc}"}
        # An older .blend: its seed is an int ID property under the name "seed".
        settings = self.settings
        for key in ("seed_text", "seed"):
            if key in settings:
                del settings[key]
        settings["seed"] = 4242
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
        bpy.ops.wm.open_mainfile(filepath=str(blend))
        out["old_blend_seed"] = bpy.context.scene.pixelkiln.seed
        return out

    def daemon_lost(self, pid: int) -> dict[str, Any]:
        """SIGKILL the daemon once the first step arrived."""
        self.configure(
            width=256, height=256, steps=50, seed="3", map_normal=False, map_roughness=False
        )
        images_before = set(bpy.data.images.keys())
        bpy.ops.pixelkiln.generate()
        stepping = self.runtime.pump(until=lambda: self.state.status.startswith("Step"))
        status_at_kill = self.state.status
        os.kill(pid, signal.SIGKILL)
        finished = self.runtime.pump(timeout=30)
        return {
            "saw_progress": stepping,
            "status_at_kill": status_at_kill,
            "finished": finished,
            **self.status(),
            "leftover_images": sorted(set(bpy.data.images.keys()) - images_before),
        }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    address, pid, work, report_path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    s = Fixes(address)
    steps = [
        ("register", s.register),
        ("relative_unsaved", lambda: s.relative_unsaved(work)),  # first: the .blend is unsaved
        ("no_overwrite", lambda: s.no_overwrite(work / "out")),
        ("big_seed", lambda: s.big_seed(work / "seed.blend")),
        ("daemon_lost", lambda: s.daemon_lost(pid)),  # last: the daemon is gone after it
        ("unregister", s.unregister),
    ]
    s.run(steps, Path(report_path))


if __name__ == "__main__":
    main()
