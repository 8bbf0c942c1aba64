"""The generated engine stubs: up to date, and proto3-exact against Python's protobuf.

- ``tools/gen_stubs.py --check`` passes (the committed C# and GDScript match proto/).
- C#: the committed runtime + generated sources, the test-only stubs of
  tests/protos/stubtest/v1/all_types.proto and tests/stubs/csharp/VectorCheck.cs are compiled
  with mono's ``mcs`` (skipped without it) and run over the shared vectors of make_vectors.py:
  decode + re-encode must give Python's canonical bytes, and decoded values must match.
- GDScript: every generated and hand-written .gd file parses (gdparse) and lints (gdlint) as
  Godot 4 code; the codec's logic runs through the same vectors on gdscript_vm.py, a small
  interpreter of the GDScript subset the generator emits (Godot 4 itself is not installable
  here; see clients/gdscript/README.md for what that does and does not prove).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import make_vectors

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import gen_stubs  # noqa: E402

CSHARP = ROOT / "clients" / "csharp"
GDSCRIPT = ROOT / "clients" / "gdscript"
HARNESS = Path(__file__).resolve().parent / "csharp" / "VectorCheck.cs"
GD_HARNESS = Path(__file__).resolve().parent / "gdscript" / "vector_check.gd"


@pytest.fixture(scope="session")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[make_vectors.Vector]]:
    out = tmp_path_factory.mktemp("vectors")
    built = make_vectors.build_vectors()
    make_vectors.write_vectors(out, built)
    return out, built


@pytest.fixture(scope="session")
def stubtest_stubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stubs of the test-only proto (not committed), generated next to fresh contract stubs."""
    return make_vectors.render_test_stubs(tmp_path_factory.mktemp("stubs"))


def test_generated_stubs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_stubs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_reports_changed_missing_and_extra_files(tmp_path: Path) -> None:
    dirs = {"csharp": tmp_path / "cs", "gdscript": tmp_path / "gd"}
    gen_stubs.write(
        gen_stubs.render([gen_stubs.PROTO_ROOT], gen_stubs.proto_files(), gen_stubs.HEADER), dirs
    )
    assert gen_stubs.stale_files(dirs) == []
    (dirs["csharp"] / "Image.cs").write_text("// edited by hand\n", encoding="utf-8")
    (dirs["gdscript"] / "pixelkiln_v1.gd").unlink()
    (dirs["csharp"] / "Old.cs").write_text("", encoding="utf-8")
    stale = {Path(p).name for p in gen_stubs.stale_files(dirs)}
    assert stale == {"Image.cs", "pixelkiln_v1.gd", "Old.cs"}


def test_generated_files_carry_the_header() -> None:
    files = sorted((CSHARP / "Generated").glob("*.cs")) + sorted(
        (GDSCRIPT / "generated").glob("*.gd")
    )
    assert files
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.endswith(gen_stubs.HEADER), path


# ---- C# ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def csharp_run(
    tmp_path_factory: pytest.TempPathFactory,
    vectors: tuple[Path, list[make_vectors.Vector]],
    stubtest_stubs: dict[str, Path],
) -> Path:
    """Compile once per session and run the harness over the vectors; returns the vector dir."""
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        pytest.skip("C# check needs mono's mcs and mono: apt-get install -y mono-devel")
    exe = tmp_path_factory.mktemp("csharp") / "VectorCheck.exe"
    sources = sorted((CSHARP / "Runtime").glob("*.cs")) + sorted(
        (CSHARP / "Generated").glob("*.cs")
    )
    sources += [stubtest_stubs["csharp"] / "AllTypes.cs", HARNESS]
    compiled = subprocess.run(
        ["mcs", "-nologo", "-warnaserror+", f"-out:{exe}", *map(str, sources)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    vector_dir, _ = vectors
    ran = subprocess.run(
        ["mono", "--debug", str(exe), str(vector_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return vector_dir


def _spots(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return dict(line.split("=", 1) for line in lines if line)


def _check_outputs(vector_dir: Path, built: list[make_vectors.Vector], suffix: str) -> None:
    mismatched = []
    for v in built:
        if v.error:
            assert not (vector_dir / f"{v.name}.{suffix}.out").exists(), v.name
            continue
        out = (vector_dir / f"{v.name}.{suffix}.out").read_bytes()
        expected = v.expected_gd if suffix == "gd" and v.expected_gd is not None else v.expected
        if out != expected:
            mismatched.append(f"{v.name}: {len(out)} bytes, expected {len(expected)}")
            continue
        printed = _spots(vector_dir / f"{v.name}.{suffix}.spots")
        for key, value in v.spots.items():
            assert printed.get(key) == value, f"{v.name}: {key}={printed.get(key)!r}, not {value!r}"
    assert not mismatched, "\n".join(mismatched)


def test_csharp_round_trips_every_vector(
    csharp_run: Path, vectors: tuple[Path, list[make_vectors.Vector]]
) -> None:
    _check_outputs(csharp_run, vectors[1], "cs")


# ---- GDScript ------------------------------------------------------------------------------


def _gd_files() -> list[Path]:
    return sorted(GDSCRIPT.rglob("*.gd")) + [GD_HARNESS]


@pytest.mark.parametrize("path", _gd_files(), ids=lambda p: p.name)
def test_gdscript_parses_and_lints(path: Path) -> None:
    pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
    from gdtoolkit.linter import DEFAULT_CONFIG, lint_code
    from gdtoolkit.parser import parser

    code = path.read_text(encoding="utf-8")
    parser.parse(code)  # gdparse: raises on a syntax error
    problems = lint_code(code, DEFAULT_CONFIG)
    assert not problems, "\n".join(f"{path.name}:{p.line}: {p.description}" for p in problems)


def test_gdscript_test_stubs_lint(stubtest_stubs: dict[str, Path]) -> None:
    pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
    from gdtoolkit.linter import DEFAULT_CONFIG, lint_code

    for path in sorted(stubtest_stubs["gdscript"].glob("*.gd")):
        problems = lint_code(path.read_text(encoding="utf-8"), DEFAULT_CONFIG)
        assert not problems, "\n".join(f"{path.name}:{p.line}: {p.description}" for p in problems)


@pytest.fixture(scope="session")
def gdscript_run(
    tmp_path_factory: pytest.TempPathFactory,
    vectors: tuple[Path, list[make_vectors.Vector]],
    stubtest_stubs: dict[str, Path],
) -> Path:
    """Lay the scripts out as in a Godot project and run the harness on gdscript_vm."""
    pytest.importorskip("gdtoolkit", reason="pip install gdtoolkit (Godot 4 GDScript parser)")
    from .gdscript_vm import VM

    generated = make_vectors.godot_layout(
        tmp_path_factory.mktemp("godot"), stubtest_stubs["gdscript"]
    )
    vm = VM()
    harness = vm.load(GD_HARNESS)
    vector_dir, _ = vectors
    failures = vm.call(harness.funcs["run"], None, [str(vector_dir), str(generated)])
    assert failures == 0, "\n".join(vm.errors)
    return vector_dir


def test_gdscript_round_trips_every_vector(
    gdscript_run: Path, vectors: tuple[Path, list[make_vectors.Vector]]
) -> None:
    _check_outputs(gdscript_run, vectors[1], "gd")
