"""Copy the shared C# client into the Unity package and write the package's .meta files.

    python engine_plugins/unity/Tools~/sync_client.py           # after changing clients/csharp/
    python engine_plugins/unity/Tools~/sync_client.py --check   # exit 1 when anything is stale

A maintainer script, not part of what Unity imports: folders ending in ``~`` are ignored by
Unity's asset database (and this one gets no .meta file).

Why a copy and not a ``file:`` reference: a UPM package installed from a git URL
(``...git?path=engine_plugins/unity``) or from a tarball contains only its own folder, so it
cannot reach ``clients/csharp`` beside it. The copies under ``Runtime/Client/`` are
byte-identical to ``clients/csharp/{Generated,Runtime,Client}/*.cs`` (compiled by Unity as the
``PixelKiln.Client`` assembly, ``noEngineReferences``), and tests/clients/test_csharp_client.py
fails when they drift.

Packages from git or a tarball are immutable: Unity ignores assets without a .meta file there,
so every file and folder of the package gets one, with a GUID derived from its path (stable
across machines and runs). Hidden entries and those ending in ``~`` are skipped, as Unity does.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parents[1]
CSHARP = ROOT / "clients" / "csharp"
PARTS = ("Generated", "Runtime", "Client")
TARGET = PACKAGE / "Runtime" / "Client"
PACKAGE_NAME = "com.pixelkiln.unity"

CLIENT_ASMDEF = """{
    "name": "PixelKiln.Client",
    "rootNamespace": "PixelKiln",
    "references": [],
    "includePlatforms": [],
    "excludePlatforms": [
        "WebGL"
    ],
    "allowUnsafeCode": false,
    "overrideReferences": false,
    "precompiledReferences": [],
    "autoReferenced": true,
    "defineConstraints": [],
    "versionDefines": [],
    "noEngineReferences": true
}
"""

CLIENT_README = """# Copied: do not edit

These sources are copies of `clients/csharp/{Generated,Runtime,Client}` (the shared C# client,
also used by Godot 4 .NET), made by `engine_plugins/unity/Tools~/sync_client.py`. Edit the
originals, then run `python engine_plugins/unity/Tools~/sync_client.py`; a test fails while the
copies are stale.
"""

IMPORTERS = {
    ".cs": "MonoImporter",
    ".asmdef": "AssemblyDefinitionImporter",
    ".md": "TextScriptImporter",
    ".txt": "TextScriptImporter",
    ".json": "TextScriptImporter",
}

MONO_META = """fileFormatVersion: 2
guid: {guid}
MonoImporter:
  externalObjects: {{}}
  serializedVersion: 2
  defaultReferences: []
  executionOrder: 0
  icon: {{instanceID: 0}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

FOLDER_META = """fileFormatVersion: 2
guid: {guid}
folderAsset: yes
DefaultImporter:
  externalObjects: {{}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""

PLAIN_META = """fileFormatVersion: 2
guid: {guid}
{importer}:
  externalObjects: {{}}
  userData: 
  assetBundleName: 
  assetBundleVariant: 
"""


def expected_copies() -> dict[Path, bytes]:
    """Every file under Runtime/Client/ and its content."""
    files: dict[Path, bytes] = {
        TARGET / "PixelKiln.Client.asmdef": CLIENT_ASMDEF.encode(),
        TARGET / "README.md": CLIENT_README.encode(),
    }
    for part in PARTS:
        for source in sorted((CSHARP / part).glob("*.cs")):
            files[TARGET / part / source.name] = source.read_bytes()
    return files


def ignored(path: Path) -> bool:
    rel = path.relative_to(PACKAGE)
    return any(p.startswith(".") or p.endswith("~") or p == "__pycache__" for p in rel.parts)


def guid_for(path: Path) -> str:
    rel = path.relative_to(PACKAGE).as_posix()
    return hashlib.md5(f"{PACKAGE_NAME}/{rel}".encode()).hexdigest()


def meta_for(path: Path, is_dir: bool) -> bytes:
    guid = guid_for(path)
    if is_dir:
        return FOLDER_META.format(guid=guid).encode()
    if path.suffix == ".cs":
        return MONO_META.format(guid=guid).encode()
    if path.name == "package.json" and path.parent == PACKAGE:
        importer = "PackageManifestImporter"
    else:
        importer = IMPORTERS.get(path.suffix, "DefaultImporter")
    return PLAIN_META.format(guid=guid, importer=importer).encode()


def expected_metas(entries: list[tuple[Path, bool]]) -> dict[Path, bytes]:
    return {path.with_name(path.name + ".meta"): meta_for(path, is_dir) for path, is_dir in entries}


def package_entries(extra_files: list[Path]) -> list[tuple[Path, bool]]:
    """(path, is_dir) of every asset Unity would import, with the copies as they will be."""
    seen: dict[Path, bool] = {}
    for path in PACKAGE.rglob("*"):
        if ignored(path) or path.suffix == ".meta" or path.is_relative_to(TARGET):
            continue
        seen[path] = path.is_dir()
    seen[TARGET] = True
    for path in extra_files:
        seen[path] = False
        parent = path.parent
        while parent != TARGET:
            seen[parent] = True
            parent = parent.parent
    return sorted(seen.items())


def plan() -> tuple[dict[Path, bytes], list[Path]]:
    """The files that must exist with their bytes, and the files that must not exist."""
    copies = expected_copies()
    wanted = dict(copies)
    wanted.update(expected_metas(package_entries(list(copies))))
    unwanted = []
    if TARGET.exists():
        unwanted += [p for p in TARGET.rglob("*") if p.is_file() and p not in wanted]
    unwanted += [
        p
        for p in PACKAGE.rglob("*.meta")
        if not ignored(p) and p not in wanted and not p.is_relative_to(TARGET)
    ]
    return wanted, sorted(set(unwanted))


def stale() -> list[str]:
    wanted, unwanted = plan()
    problems = [
        f"{p.relative_to(ROOT)}: {'missing' if not p.exists() else 'differs'}"
        for p, content in wanted.items()
        if not p.exists() or p.read_bytes() != content
    ]
    problems += [f"{p.relative_to(ROOT)}: should not exist" for p in unwanted]
    return problems


def sync() -> list[str]:
    wanted, unwanted = plan()
    changed = []
    for path in unwanted:
        path.unlink()
        changed.append(f"removed {path.relative_to(ROOT)}")
    for path, content in wanted.items():
        if path.exists() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        changed.append(f"wrote {path.relative_to(ROOT)}")
    for folder in sorted((p for p in TARGET.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the package is stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for line in problems:
            print(line)
        if problems:
            print("stale: run python engine_plugins/unity/Tools~/sync_client.py", file=sys.stderr)
        return 1 if problems else 0
    for line in sync():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
