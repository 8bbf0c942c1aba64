"""Build the Blender extension's bundled parts: the vendored client and the Python wheels.

    python tools/build_blender_wheels.py               # vendor the client, download wheels,
                                                       # rewrite the manifest's wheels list
    python tools/build_blender_wheels.py --vendor-only # only refresh vendor/pixelkiln (offline)
    python tools/build_blender_wheels.py --check       # exit 1 when vendor/ or the manifest
                                                       # is stale (offline; what the tests check)
    python tools/build_blender_wheels.py --fetch-only  # only download what the manifest
                                                       # lists (CI: vendor/ stays as committed)
    python tools/build_blender_wheels.py --zip dist    # also write dist/pixelkiln-<ver>.zip
    python tools/build_blender_wheels.py --print-requirements

Blender 4.2+ installs the wheels an extension lists in ``blender_manifest.toml`` into its own
site-packages. Blender's Python is CPython 3.11 (4.2 to 4.5), so the wheels are fetched for
3.11 on each platform in ``PLATFORMS`` with ``pip download --only-binary=:all: --no-deps``
and exact pins: the same pins give the same files, and the manifest is rewritten in sorted
order, so running the script twice changes nothing. The wheels are not committed; the
manifest that lists them is.

The client (``clients/python/pixelkiln``) is copied, not wheeled: Blender's rule is that
bundled wheels come unmodified from PyPI, and the copy is committed like generated code, so
the extension runs from the source tree and a test fails when the copy is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
EXTENSION_DIR = ROOT / "engine_plugins" / "blender" / "pixelkiln"
MANIFEST = EXTENSION_DIR / "blender_manifest.toml"
WHEELS_DIR = EXTENSION_DIR / "wheels"
CLIENT_SRC = ROOT / "clients" / "python" / "pixelkiln"
VENDOR_DIR = EXTENSION_DIR / "vendor" / "pixelkiln"
# The command line needs the daemon's packages; nothing else in Blender does.
VENDOR_EXCLUDE = frozenset({"cli.py", "_cli_parts.py"})

# Blender's Python: 3.11 in Blender 4.2 LTS through 4.5 LTS.
PYTHON_VERSION = "3.11"
# The one list of platforms (Blender's names, as in the manifest's `platforms`); the pip tags
# fetched for each come from pip_platform_tags().
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
_MAX_MACOS = (11, 2)


@dataclass(frozen=True)
class Wheel:
    filename: str
    project: str  # normalized: lowercase, "-" separated
    version: str
    python_tags: frozenset[str]
    abi_tags: frozenset[str]
    platform_tags: frozenset[str]

    @classmethod
    def parse(cls, filename: str) -> Wheel:
        name = filename.rsplit("/", 1)[-1]
        if not name.endswith(".whl"):
            raise ValueError(f"{name}: not a wheel")
        parts = name[: -len(".whl")].split("-")
        if len(parts) == 6:  # a build tag
            parts = parts[:2] + parts[3:]
        if len(parts) != 5:
            raise ValueError(f"{name}: not a wheel file name")
        project, version, py, abi, plat = parts
        return cls(
            name,
            normalize(project),
            version,
            frozenset(py.split(".")),
            frozenset(abi.split(".")),
            frozenset(plat.split(".")),
        )

    def supports_python(self, version: str = PYTHON_VERSION) -> bool:
        major, minor = (int(x) for x in version.split("."))
        cp = f"cp{major}{minor}"
        if cp in self.python_tags and self.abi_tags & {cp, "abi3", "none"}:
            return True
        if "abi3" in self.abi_tags:
            return any(_cp_version(t) <= (major, minor) for t in self.python_tags if t[:2] == "cp")
        return bool(self.abi_tags & {"none"}) and bool(
            self.python_tags & {f"py{major}", f"py{major}{minor}"}
        )

    def supports_platform(self, blender_platform: str) -> bool:
        return any(_platform_ok(tag, blender_platform) for tag in self.platform_tags)

    @property
    def is_pure(self) -> bool:
        return self.platform_tags == {"any"}


def pip_platform_tags(blender_platform: str) -> list[str]:
    """Every wheel platform tag that runs where Blender does, newest first (pip 23 does not
    widen a ``--platform`` tag to the older ones by itself)."""
    if blender_platform == "windows-x64":
        return ["win_amd64"]
    if blender_platform == "linux-x64":
        newest = _MAX_GLIBC[1]
        return [f"manylinux_2_{m}_x86_64" for m in range(newest, 16, -1)] + ["manylinux2014_x86_64"]
    archs = {"macos-arm64": ("arm64", "universal2"), "macos-x64": ("x86_64", "universal2")}
    if blender_platform not in archs:
        raise ValueError(f"unknown Blender platform {blender_platform!r}")
    versions = ["11_0"] + [f"10_{minor}" for minor in range(16, 8, -1)]
    return [f"macosx_{v}_{arch}" for v in versions for arch in archs[blender_platform]]


def normalize(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


def _cp_version(tag: str) -> tuple[int, int]:
    digits = tag[2:]
    return (int(digits[0]), int(digits[1:] or 0))


def _platform_ok(tag: str, blender_platform: str) -> bool:
    if tag == "any":
        return True
    if blender_platform == "windows-x64":
        return tag == "win_amd64"
    if blender_platform == "linux-x64":
        if tag in ("manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"):
            return True
        m = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", tag)
        return m is not None and (int(m[1]), int(m[2])) <= _MAX_GLIBC
    if blender_platform in ("macos-arm64", "macos-x64"):
        m = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag)
        if not m or (int(m[1]), int(m[2])) > _MAX_MACOS:
            return False
        arch = m[3]
        if blender_platform == "macos-arm64":
            return arch in ("arm64", "universal2")
        return arch in ("x86_64", "universal2", "universal", "intel")
    raise ValueError(f"unknown Blender platform {blender_platform!r}")


def wheel_set_problems(listed: list[str]) -> list[str]:
    """What is wrong with a manifest ``wheels`` list for REQUIREMENTS x PLATFORMS: each pin
    must have exactly one compatible wheel per platform, nothing else may be listed, and the
    list is sorted ``./wheels/<file>`` paths (what :func:`download_wheels` produces)."""
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
    for project, version in REQUIREMENTS.items():
        for platform in PLATFORMS:
            matches = [
                w
                for w in wheels
                if w.project == normalize(project)
                and w.version == version
                and w.supports_python()
                and w.supports_platform(platform)
            ]
            if len(matches) != 1:
                found = ", ".join(w.filename for w in matches) or "none"
                problems.append(f"{project}=={version} for {platform}: {found}")
            used.update(w.filename for w in matches)
    problems += [f"{w.filename}: not required by any pin" for w in wheels if w.filename not in used]
    return problems


def requirement_lines() -> list[str]:
    return [f"{name}=={version}" for name, version in REQUIREMENTS.items()]


# --- the vendored client ---------------------------------------------------------------


def client_files() -> list[Path]:
    """The client's runtime modules, relative to its package folder."""
    return sorted(
        p.relative_to(CLIENT_SRC)
        for p in CLIENT_SRC.rglob("*.py")
        if p.name not in VENDOR_EXCLUDE and "__pycache__" not in p.parts
    )


def vendored_files() -> list[Path]:
    if not VENDOR_DIR.is_dir():
        return []
    return sorted(
        p.relative_to(VENDOR_DIR)
        for p in VENDOR_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def stale_vendor_files() -> list[str]:
    """Files of vendor/pixelkiln that differ from, lack, or add to the client's sources."""
    want, have = client_files(), vendored_files()
    stale = sorted(str(p) for p in set(want) ^ set(have))
    stale += [
        str(p)
        for p in want
        if p in have and not filecmp.cmp(CLIENT_SRC / p, VENDOR_DIR / p, shallow=False)
    ]
    return sorted(stale)


def vendor_client() -> list[str]:
    """Make vendor/pixelkiln an exact copy of the client's runtime modules."""
    changed = stale_vendor_files()
    want = set(client_files())
    for rel in vendored_files():
        if rel not in want:
            (VENDOR_DIR / rel).unlink()
    for rel in sorted(want):
        target = VENDOR_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or not filecmp.cmp(CLIENT_SRC / rel, target, shallow=False):
            shutil.copyfile(CLIENT_SRC / rel, target)
    for folder in sorted(VENDOR_DIR.rglob("*"), reverse=True):
        if folder.is_dir() and folder.name != "__pycache__" and not any(folder.iterdir()):
            folder.rmdir()
    return changed


# --- wheels and the manifest ------------------------------------------------------------


def download_wheels(dest: Path = WHEELS_DIR) -> list[str]:
    """Fetch every pin for every platform into ``dest``; drop wheels no pin needs."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for platform in PLATFORMS:
            tags = [arg for tag in pip_platform_tags(platform) for arg in ("--platform", tag)]
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
                PYTHON_VERSION,
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
    for old in dest.glob("*.whl"):
        if old.name not in chosen:
            old.unlink()
    listed = [f"./wheels/{name}" for name in chosen]
    problems = wheel_set_problems(listed)
    if problems:
        raise SystemExit("downloaded wheels do not cover the pins:\n  " + "\n  ".join(problems))
    return listed


def _choose(fetched: list[str]) -> list[str]:
    """One wheel per (pin, platform): pip may fetch a universal2 and a thin wheel for macOS;
    prefer the thin one (smaller), then the name, so the choice never depends on order."""
    wheels = [Wheel.parse(n) for n in fetched]
    chosen: set[str] = set()
    for project in REQUIREMENTS:
        for platform in PLATFORMS:
            options = [
                w
                for w in wheels
                if w.project == normalize(project) and w.supports_platform(platform)
            ]
            if options:
                best = min(
                    options, key=lambda w: ("universal2" in str(w.platform_tags), w.filename)
                )
                chosen.add(best.filename)
    return sorted(chosen)


_WHEELS_BLOCK = re.compile(r"^wheels = \[\n(?:.*\n)*?\]\n", re.MULTILINE)


def render_wheels(listed: list[str]) -> str:
    return "wheels = [\n" + "".join(f'  "{w}",\n' for w in listed) + "]\n"


_PLATFORMS_LINE = re.compile(r"^platforms = \[.*\]\n", re.MULTILINE)


def rewrite_manifest(listed: list[str], manifest: Path = MANIFEST) -> bool:
    """Write ``platforms`` (from PLATFORMS) and ``wheels`` into the manifest; True if changed."""
    text = manifest.read_text()
    if not _WHEELS_BLOCK.search(text) or not _PLATFORMS_LINE.search(text):
        raise SystemExit(f"{manifest}: no 'platforms = [...]' line or 'wheels = [' block")
    platforms = "platforms = [" + ", ".join(f'"{p}"' for p in PLATFORMS) + "]\n"
    new = _PLATFORMS_LINE.sub(lambda _m: platforms, text, count=1)
    new = _WHEELS_BLOCK.sub(lambda _m: render_wheels(listed), new, count=1)
    if new != text:
        manifest.write_text(new)
    return new != text


def manifest_problems(manifest: Path = MANIFEST) -> list[str]:
    data = tomllib.loads(manifest.read_text())
    problems = []
    if data.get("platforms") != list(PLATFORMS):
        problems.append(f"platforms = {data.get('platforms')}, want {list(PLATFORMS)}")
    problems += wheel_set_problems(list(data.get("wheels", [])))
    return problems


# --- the extension zip -------------------------------------------------------------------

# Kept out of the zip (Blender's own `extension build` honours the same [build] section).
_ZIP_EXCLUDE = re.compile(r"(^|/)(__pycache__|\.[^/]*)(/|$)|\.pyc$")
_ZIP_TIME = (2024, 7, 16, 0, 0, 0)  # fixed: the same tree gives the same bytes


def build_zip(out_dir: Path) -> Path:
    data = tomllib.loads(MANIFEST.read_text())
    listed = set(data.get("wheels", []))
    missing = [w for w in sorted(listed) if not (EXTENSION_DIR / w).is_file()]
    if missing:
        raise SystemExit("missing wheels (run without --vendor-only first): " + ", ".join(missing))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if vendor/ or manifest stale")
    mode.add_argument("--vendor-only", action="store_true", help="refresh vendor/ only (offline)")
    mode.add_argument(
        "--fetch-only",
        action="store_true",
        help="download the wheels the manifest lists; change nothing else (CI)",
    )
    mode.add_argument("--print-requirements", action="store_true", help="the pins, one a line")
    parser.add_argument("--zip", type=Path, metavar="DIR", help="write the extension zip here")
    args = parser.parse_args(argv)

    if args.print_requirements:
        print("\n".join(requirement_lines()))
        return 0
    if args.check:
        problems = [f"vendor/pixelkiln/{f} is stale" for f in stale_vendor_files()]
        problems += manifest_problems()
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run: python tools/build_blender_wheels.py", file=sys.stderr)
        return 1 if problems else 0

    if args.fetch_only:
        listed = download_wheels()
        want = list(tomllib.loads(MANIFEST.read_text()).get("wheels", []))
        if listed != want:
            print("the manifest lists other wheels than the pins give:", file=sys.stderr)
            print(f"  manifest: {want}\n  pins:     {listed}", file=sys.stderr)
            print("run: python tools/build_blender_wheels.py", file=sys.stderr)
            return 1
        print(f"{len(listed)} wheels in {WHEELS_DIR.relative_to(ROOT)}")
        if args.zip:
            print(f"wrote {build_zip(args.zip)}")
        return 0

    changed = vendor_client()
    print(f"vendored client: {len(changed)} file(s) updated in {VENDOR_DIR.relative_to(ROOT)}")
    if args.vendor_only:
        return 0
    listed = download_wheels()
    rewrote = rewrite_manifest(listed)
    print(
        f"{len(listed)} wheels in {WHEELS_DIR.relative_to(ROOT)}; manifest "
        + ("rewritten" if rewrote else "unchanged")
    )
    if args.zip:
        print(f"wrote {build_zip(args.zip)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
