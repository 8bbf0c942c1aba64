"""Regenerate the Python protobuf and gRPC modules from proto/.

    python tools/gen_protos.py            # write clients/python/pixelkiln/v1/*_pb2*.py
    python tools/gen_protos.py --check    # exit 1 when the committed files are stale

Compiled with ``-I proto`` so the generated imports read ``from pixelkiln.v1 import ...``,
which is exactly where the Python client package keeps them: no import patching.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "clients" / "python"
PACKAGE_DIR = Path("pixelkiln") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Compile every proto file into ``out_root``; return the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    protos = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(
        p for p in (out_root / PACKAGE_DIR).iterdir() if p.name.endswith(GENERATED_SUFFIXES)
    )


def stale_files() -> list[str]:
    """Names of generated files that differ from, are missing in, or are extra in the tree."""
    committed_dir = OUT_ROOT / PACKAGE_DIR
    committed = {p.name for p in committed_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p for p in generate(Path(tmp))}
        stale = sorted(committed ^ set(fresh))
        stale += sorted(
            name
            for name, path in fresh.items()
            if name in committed and not filecmp.cmp(path, committed_dir / name, shallow=False)
        )
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated files (run python tools/gen_protos.py):", *stale, sep="\n  ")
            return 1
        print("generated files are up to date")
        return 0
    (OUT_ROOT / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    for path in generate(OUT_ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
