"""The Blender add-on against a daemon with tokens and TLS, headless in the bpy venv.

    .venv-bpy/bin/python tests/blender/secure_scenario.py ADDRESS CA OTHER_CA TOKEN REPORT.json

Token and CA come from the add-on's preferences (Blender's user preferences, not the .blend),
or from PIXELKILN_TOKEN / PIXELKILN_TLS_CA; each step records what the panel's status said.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenario import Scenario  # noqa: E402 - after the path insert


class Secure(Scenario):
    def prefs(self, token: str = "", tls_ca: str = "", use_tls: bool = False) -> None:
        prefs = self.addon_prefs()
        prefs.token, prefs.tls_ca, prefs.use_tls = token, tls_ca, use_tls

    def attempt(self, **prefs: Any) -> dict[str, Any]:
        self.prefs(**prefs)
        self.configure()
        bpy.ops.pixelkiln.generate()
        finished = self.runtime.pump(timeout=60)
        name = self.state.last_image
        img = bpy.data.images.get(name) if name else None
        return {
            "finished": finished,
            **self.status(),
            "size": list(img.size) if img else None,
            "security": self.runtime.props.client_security(bpy.context),
        }

    def health_with(self, token: str, ca: str) -> dict[str, Any]:
        self.prefs(token=token, tls_ca=ca)
        return self.health()

    def from_environment(self, token: str, ca: str) -> dict[str, Any]:
        os.environ["PIXELKILN_TOKEN"], os.environ["PIXELKILN_TLS_CA"] = token, ca
        try:
            return self.attempt()
        finally:
            del os.environ["PIXELKILN_TOKEN"], os.environ["PIXELKILN_TLS_CA"]

    def not_in_blend(self, blend: Path, token: str) -> dict[str, Any]:
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), compress=False)
        return {"token_in_blend": token.encode() in blend.read_bytes()}


def main() -> None:
    address, ca, other_ca, token, report_path = sys.argv[1:6]
    s = Secure(address)
    with tempfile.TemporaryDirectory() as tmp:
        steps = [
            ("register", s.register),
            ("plaintext_to_tls", lambda: s.attempt(token=token)),
            ("no_token", lambda: s.attempt(tls_ca=ca)),
            ("wrong_token", lambda: s.attempt(token="pk_not-a-token", tls_ca=ca)),
            ("other_ca", lambda: s.attempt(token=token, tls_ca=other_ca)),
            ("missing_ca", lambda: s.attempt(token=token, tls_ca="/nonexistent/ca.pem")),
            ("allowed", lambda: s.attempt(token=token, tls_ca=ca)),
            ("health", lambda: s.health_with(token, ca)),
            ("environment", lambda: s.from_environment(token, ca)),
            ("blend", lambda: s.not_in_blend(Path(tmp) / "scene.blend", token)),
            ("unregister", s.unregister),
        ]
        s.run(steps, Path(report_path))


if __name__ == "__main__":
    main()
