"""Build the Blender extension's bundled wheels: the PixelKiln client and its dependencies.

    python tools/build_blender_wheels.py               # build the client wheel, download the
                                                       # others, rewrite the manifest
    python tools/build_blender_wheels.py --client-only # only build the client wheel (offline)
    python tools/build_blender_wheels.py --check       # exit 1 when the manifest is stale
                                                       # (offline; what the tests check)
    python tools/build_blender_wheels.py --fetch-only  # build/download what the manifest lists,
                                                       # change nothing else (CI)
    python tools/build_blender_wheels.py --zip dist    # also write dist/pixelkiln-<ver>.zip
    python tools/build_blender_wheels.py --print-requirements

Blender 4.2+ installs the wheels an extension lists in ``blender_manifest.toml`` into its own
site-packages, only those that fit the running Blender's platform and Python. Each Blender
line ships one CPython (``BLENDER_PYTHON``), so grpcio (compiled per CPython version) is
fetched for every (platform, Python) pair the supported lines need, with
``pip download --only-binary=:all: --no-deps`` and exact pins; protobuf's ``abi3`` wheels
and the pure ones cover several pairs each. Every wheel's tags are checked with
``packaging.tags``: a pin with no wheel for some pair fails and names the pair. The same pins
give the same files and the manifest is rewritten in sorted order, so running the script
twice changes nothing. The wheels are not committed; the manifest that lists them is.

The client (``clients/python/pixelkiln`` without its command line, which needs the daemon's
packages) is built here into a pure-Python wheel, ``pixelkiln_client-<ver>-py3-none-any.whl``,
byte-for-byte reproducible (fixed timestamps, sorted entries): it is the top-level
``pixelkiln`` package the generated protobuf modules import by absolute name.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tomllib

if TYPE_CHECKING:
    from packaging.tags import Tag

ROOT = Path(__file__).resolve().parent.parent
EXTENSION_DIR = ROOT / "engine_plugins" / "blender" / "pixelkiln"
MANIFEST = EXTENSION_DIR / "blender_manifest.toml"
WHEELS_DIR = EXTENSION_DIR / "wheels"
CLIENT_SRC = ROOT / "clients" / "python" / "pixelkiln"
PYPROJECT = ROOT / "pyproject.toml"
# The command line needs the daemon's packages; nothing else in Blender does.
CLIENT_EXCLUDE = frozenset({"cli.py", "_cli_args.py", "_cli_parts.py"})
CLIENT_DIST = "pixelkiln_client"

# The CPython each supported Blender line ships. Source: Blender's own module builds on PyPI
# (`bpy`): 4.2.x to 5.0.x are cp311 wheels (Requires-Python ==3.11.*), 5.1.x to 5.3.x cp313
# (==3.13.*). A new line is added here once checked; blender_version_max (exclusive) is the
# line after the last one.
BLENDER_PYTHON: dict[str, str] = {
    "4.2": "3.11",
    "4.3": "3.11",
    "4.4": "3.11",
    "4.5": "3.11",
    "5.0": "3.11",
    "5.1": "3.13",
    "5.2": "3.13",
    "5.3": "3.13",
}
PYTHON_VERSIONS: tuple[str, ...] = tuple(sorted(set(BLENDER_PYTHON.values())))
BLENDER_VERSION_MIN = f"{min(BLENDER_PYTHON, key=lambda v: tuple(map(int, v.split('.'))))}.0"
_LAST = max(BLENDER_PYTHON, key=lambda v: tuple(map(int, v.split("."))))
BLENDER_VERSION_MAX = f"{_LAST.split('.')[0]}.{int(_LAST.split('.')[1]) + 1}.0"

# The one list of platforms (Blender's names, as in the manifest's `platforms`). Not here:
# linux-arm64 (no official Blender build: PyPI's bpy has no aarch64 wheel) and windows-arm64
# (grpcio publishes no win_arm64 wheel).
PLATFORMS: tuple[str, ...] = ("linux-x64", "macos-arm64", "macos-x64", "windows-x64")
# Exact pins. The generated stubs need protobuf >= 7.35.1 (< 8) and grpcio >= 1.85.1;
# typing-extensions is grpcio's only dependency (Blender wants dependencies bundled too).
REQUIREMENTS: dict[str, str] = {
    "grpcio": "1.85.3",
    "grpcio-health-checking": "1.85.1",
    "protobuf": "7.36.2",
    "typing-extensions": "4.16.0",
}
# Blender 4.2 itself needs glibc 2.28 and macOS 11.2: wheels for newer systems would not load.
_MAX_GLIBC = (2, 28)
_MACOS = (11, 0)


def targets() -> list[tuple[str, str]]:
    """Every (Blender platform, Python version) pair the supported lines run on."""
    return [(platform, python) for platform in PLATFORMS for python in PYTHON_VERSIONS]


def client_version() -> str:
    return str(tomllib.loads(PYPROJECT.read_text())["project"]["version"])


def client_wheel_name() -> str:
    return f"{CLIENT_DIST}-{client_version()}-py3-none-any.whl"


def required() -> dict[str, str]:
    """Every bundled distribution (normalized name) and its exact version."""
    pins = {normalize(name): version for name, version in REQUIREMENTS.items()}
    pins[normalize(CLIENT_DIST)] = client_version()
    return pins


def normalize(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


# --- wheel tags ------------------------------------------------------------------------


def platform_tags(blender_platform: str) -> list[str]:
    """Every wheel platform tag that runs where Blender does, newest first (pip does not
    widen a ``--platform`` tag to the older ones by itself)."""
    from packaging.tags import mac_platforms

    if blender_platform == "windows-x64":
        return ["win_amd64"]
    if blender_platform == "linux-x64":
        newest = _MAX_GLIBC[1]
        return [f"manylinux_2_{m}_x86_64" for m in range(newest, 16, -1)] + [
            "manylinux2014_x86_64",
            "manylinux2010_x86_64",
            "manylinux1_x86_64",
        ]
    archs = {"macos-arm64": "arm64", "macos-x64": "x86_64"}
    if blender_platform not in archs:
        raise ValueError(f"unknown Blender platform {blender_platform!r}")
    return list(mac_platforms(_MACOS, archs[blender_platform]))


def supported_tags(blender_platform: str, python: str) -> frozenset[Tag]:
    """The wheel tags CPython ``python`` on ``blender_platform`` accepts (as pip's)."""
    from packaging.tags import compatible_tags, cpython_tags

    version = tuple(int(x) for x in python.split("."))
    cp = "cp" + "".join(map(str, version))
    plats = platform_tags(blender_platform)
    return frozenset(cpython_tags(version, abis=[cp], platforms=plats)) | frozenset(
        compatible_tags(version, interpreter=cp, platforms=plats)
    )


@dataclass(frozen=True)
class Wheel:
    filename: str
    project: str  # normalized: lowercase, "-" separated
    version: str
    tags: frozenset[Tag]

    @classmethod
    def parse(cls, filename: str) -> Wheel:
        """``ValueError`` naming the file when it is not a valid wheel file name."""
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        name = filename.rsplit("/", 1)[-1]
        try:
            project, version, _build, tags = parse_wheel_filename(name)
        except InvalidWheelFilename as exc:
            raise ValueError(f"{name}: not a wheel file name ({exc})") from None
        return cls(name, normalize(project), str(version), frozenset(tags))

    def supports(self, blender_platform: str, python: str) -> bool:
        return bool(self.tags & supported_tags(blender_platform, python))

    @property
    def is_pure(self) -> bool:
        return all(t.platform == "any" for t in self.tags)


def wheel_set_problems(listed: list[str]) -> list[str]:
    """What is wrong with a manifest ``wheels`` list: each bundled distribution must have
    exactly one wheel at its pinned version for every (platform, Python) pair of
    :func:`targets`, nothing else may be listed, and the list is sorted ``./wheels/<file>``
    paths (what :func:`download_wheels` produces). Empty when all is well."""
    problems: list[str] = []
    if listed != sorted(listed):
        problems.append("the wheels list is not sorted")
    wheels: list[Wheel] = []
    for entry in listed:
        if not entry.startswith("./wheels/") or "\\" in entry:
            problems.append(f"{entry}: must be ./wheels/<file> with forward slashes")
        try:
            wheels.append(Wheel.parse(entry))
        except ValueError as exc:
            problems.append(str(exc))
    used: set[str] = set()
    for project, version in required().items():
        for platform, python in targets():
            matches = [
                w
                for w in wheels
                if w.project == project and w.version == version and w.supports(platform, python)
            ]
            if not matches:
                problems.append(f"{project}=={version}: no wheel for ({platform}, Python {python})")
            elif len(matches) > 1:
                names = ", ".join(w.filename for w in matches)
                problems.append(
                    f"{project}=={version}: {len(matches)} wheels for ({platform}, Python "
                    f"{python}): {names}"
                )
            used.update(w.filename for w in matches)
    problems += [f"{w.filename}: not required by any pin" for w in wheels if w.filename not in used]
    return problems


def wheel_file_problems(path: Path) -> list[str]:
    """A wheel on disk: a readable zip whose ``*.dist-info/WHEEL`` tags equal its name's."""
    try:
        named = Wheel.parse(path.name)
        with zipfile.ZipFile(path) as zf:
            metas = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/WHEEL", n)]
            if len(metas) != 1:
                return [f"{path.name}: {len(metas)} .dist-info/WHEEL files"]
            text = zf.read(metas[0]).decode()
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        return [f"{path.name}: {exc}"]
    from packaging.tags import parse_tag

    inside: set[Tag] = set()
    for line in text.splitlines():
        if line.startswith("Tag:"):
            inside |= parse_tag(line.partition(":")[2].strip())
    if inside != set(named.tags):
        return [f"{path.name}: its WHEEL file says {sorted(map(str, inside))}"]
    return []


def requirement_lines() -> list[str]:
    return [f"{name}=={version}" for name, version in REQUIREMENTS.items()]


# --- the client wheel --------------------------------------------------------------------

_ZIP_TIME = (2024, 7, 16, 0, 0, 0)  # fixed: the same tree gives the same bytes


def client_files() -> list[Path]:
    """The client's runtime files (modules and ``py.typed``), relative to its package."""
    return sorted(
        p.relative_to(CLIENT_SRC)
        for p in CLIENT_SRC.rglob("*")
        if p.is_file()
        and p.name not in CLIENT_EXCLUDE
        and "__pycache__" not in p.parts
        and p.suffix in (".py", ".typed")
    )


def _client_metadata() -> str:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = [
        "Metadata-Version: 2.1",
        "Name: pixelkiln-client",
        f"Version: {project['version']}",
        "Summary: The PixelKiln Python client (gRPC), as bundled with the Blender extension",
        f"License: {project['license']}",
        f"Requires-Python: {project['requires-python']}",
        *(f"Requires-Dist: {dep}" for dep in project["dependencies"]),
    ]
    return "\n".join(lines) + "\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_client_wheel(dest: Path) -> Path:
    """Write ``pixelkiln_client-<ver>-py3-none-any.whl`` into ``dest`` (reproducibly)."""
    info = f"{CLIENT_DIST}-{client_version()}.dist-info"
    entries: list[tuple[str, bytes]] = [
        (f"pixelkiln/{rel.as_posix()}", (CLIENT_SRC / rel).read_bytes()) for rel in client_files()
    ]
    wheel_meta = (
        "Wheel-Version: 1.0\nGenerator: pixelkiln build_blender_wheels\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entries += [
        (f"{info}/METADATA", _client_metadata().encode()),
        (f"{info}/WHEEL", wheel_meta.encode()),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / client_wheel_name()
    tmp = target.with_name(f".{target.name}.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zinfo = zipfile.ZipInfo(name, _ZIP_TIME)
            zinfo.external_attr = 0o644 << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zinfo, data)
    tmp.replace(target)
    return target


# --- wheels and the manifest ------------------------------------------------------------


def download_wheels(dest: Path = WHEELS_DIR) -> list[str]:
    """Fetch every pin for every (platform, Python) pair into ``dest``, build the client
    wheel there, and drop wheels nothing needs. Returns the manifest's ``wheels`` list."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for platform, python in targets():
            tags = [arg for tag in platform_tags(platform) for arg in ("--platform", tag)]
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                python,
                *tags,
                "--dest",
                tmp,
                *requirement_lines(),
            ]
            subprocess.run(cmd, check=True)
        fetched = sorted(p.name for p in Path(tmp).glob("*.whl"))
        chosen = _choose(fetched)
        for name in chosen:
            if not (dest / name).exists():
                shutil.copyfile(Path(tmp) / name, dest / name)
    chosen.append(build_client_wheel(dest).name)
    for old in dest.glob("*.whl"):
        if old.name not in chosen:
            old.unlink()
    listed = sorted(f"./wheels/{name}" for name in chosen)
    problems = wheel_set_problems(listed)
    for name in chosen:
        problems += wheel_file_problems(dest / name)
    if problems:
        raise SystemExit(
            "the wheels do not cover the supported Blenders:\n  " + "\n  ".join(problems)
        )
    return listed


def _choose(fetched: list[str]) -> list[str]:
    """One wheel per (pin, platform, Python): pip may fetch a universal2 and a thin wheel for
    macOS; prefer the thin one (smaller), then the name, so the choice never depends on
    order."""
    wheels = [Wheel.parse(n) for n in fetched]
    chosen: set[str] = set()
    for project in REQUIREMENTS:
        for platform, python in targets():
            options = [
                w
                for w in wheels
                if w.project == normalize(project) and w.supports(platform, python)
            ]
            if options:
                best = min(
                    options,
                    key=lambda w: (any("universal2" in t.platform for t in w.tags), w.filename),
                )
                chosen.add(best.filename)
    return sorted(chosen)


_WHEELS_BLOCK = re.compile(r"^wheels = \[\n(?:.*\n)*?\]\n", re.MULTILINE)


def render_wheels(listed: list[str]) -> str:
    return "wheels = [\n" + "".join(f'  "{w}",\n' for w in listed) + "]\n"


def _line(key: str) -> re.Pattern[str]:
    return re.compile(rf"^{key} = .*\n", re.MULTILINE)


def rewrite_manifest(listed: list[str], manifest: Path = MANIFEST) -> bool:
    """Write ``platforms`` (PLATFORMS), ``blender_version_min``/``_max`` (BLENDER_PYTHON)
    and ``wheels`` into the manifest; True if it changed."""
    text = manifest.read_text()
    lines = {
        "platforms": "[" + ", ".join(f'"{p}"' for p in PLATFORMS) + "]",
        "blender_version_min": f'"{BLENDER_VERSION_MIN}"',
        "blender_version_max": f'"{BLENDER_VERSION_MAX}"',
    }
    missing = [k for k in lines if not _line(k).search(text)]
    if missing or not _WHEELS_BLOCK.search(text):
        raise SystemExit(f"{manifest}: no {', '.join(missing) or 'wheels = ['} line to rewrite")
    new = text
    for key, value in lines.items():
        new = _line(key).sub(f"{key} = {value}\n".replace("\\", "\\\\"), new, count=1)
    new = _WHEELS_BLOCK.sub(lambda _m: render_wheels(listed), new, count=1)
    if new != text:
        manifest.write_text(new)
    return new != text


def manifest_problems(manifest: Path = MANIFEST) -> list[str]:
    data = tomllib.loads(manifest.read_text())
    problems = []
    if data.get("platforms") != list(PLATFORMS):
        problems.append(f"platforms = {data.get('platforms')}, want {list(PLATFORMS)}")
    for key, want in (
        ("blender_version_min", BLENDER_VERSION_MIN),
        ("blender_version_max", BLENDER_VERSION_MAX),
    ):
        if data.get(key) != want:
            problems.append(f"{key} = {data.get(key)!r}, want {want!r} (BLENDER_PYTHON)")
    problems += wheel_set_problems(list(data.get("wheels", [])))
    return problems


# --- the extension zip -------------------------------------------------------------------

# Kept out of the zip (Blender's own `extension build` honours the same [build] section).
_ZIP_EXCLUDE = re.compile(r"(^|/)(__pycache__|\.[^/]*)(/|$)|\.pyc$")


def build_zip(out_dir: Path) -> Path:
    data = tomllib.loads(MANIFEST.read_text())
    listed = set(data.get("wheels", []))
    missing = [w for w in sorted(listed) if not (EXTENSION_DIR / w).is_file()]
    if missing:
        raise SystemExit("missing wheels (run without --client-only first): " + ", ".join(missing))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{data['id']}-{data['version']}.zip"
    tmp = target.with_name(f".{target.name}.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(EXTENSION_DIR.rglob("*")):
            rel = path.relative_to(EXTENSION_DIR).as_posix()
            if path.is_dir() or _ZIP_EXCLUDE.search(rel):
                continue
            if rel.startswith("wheels/") and f"./{rel}" not in listed:
                continue
            info = zipfile.ZipInfo(rel, _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    tmp.replace(target)
    return target


def _size(listed: list[str]) -> str:
    total = sum((EXTENSION_DIR / w).stat().st_size for w in listed)
    return f"{len(listed)} wheels, {total / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the manifest is stale")
    mode.add_argument("--client-only", action="store_true", help="build the client wheel only")
    mode.add_argument(
        "--fetch-only",
        action="store_true",
        help="build and download the wheels the manifest lists; change nothing else (CI)",
    )
    mode.add_argument("--print-requirements", action="store_true", help="the pins, one a line")
    parser.add_argument("--zip", type=Path, metavar="DIR", help="write the extension zip here")
    args = parser.parse_args(argv)

    if args.print_requirements:
        print("\n".join(requirement_lines()))
        return 0
    if args.check:
        problems = manifest_problems()
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run: python tools/build_blender_wheels.py", file=sys.stderr)
        return 1 if problems else 0
    if args.client_only:
        print(f"wrote {build_client_wheel(WHEELS_DIR).relative_to(ROOT)}")
        return 0

    listed = download_wheels()
    if args.fetch_only:
        want = list(tomllib.loads(MANIFEST.read_text()).get("wheels", []))
        if listed != want:
            print("the manifest lists other wheels than the pins give:", file=sys.stderr)
            print(f"  manifest: {want}\n  pins:     {listed}", file=sys.stderr)
            print("run: python tools/build_blender_wheels.py", file=sys.stderr)
            return 1
        print(f"{_size(listed)} in {WHEELS_DIR.relative_to(ROOT)}")
    else:
        rewrote = rewrite_manifest(listed)
        print(
            f"{_size(listed)} in {WHEELS_DIR.relative_to(ROOT)}; manifest "
            + ("rewritten" if rewrote else "unchanged")
        )
    if args.zip:
        print(f"wrote {build_zip(args.zip)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
