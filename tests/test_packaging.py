"""The project's packaging: which extras pull which ONNX Runtime, and the CI constraints.

onnxruntime and onnxruntime-gpu install the same ``onnxruntime`` module; with both installed,
whichever was installed last wins and the other's files are left broken. No combination of
extras may pull both, directly or through another package's requirements.
"""

from __future__ import annotations

import importlib.metadata as md
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

ROOT = Path(__file__).resolve().parent.parent
ORT = {"onnxruntime", "onnxruntime-gpu"}
CI_EXTRAS = ("server", "cpu", "dev")  # what .ci/run and the README install


def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def direct(extras: tuple[str, ...]) -> list[Requirement]:
    """The project's own requirements with ``extras``; self-references (pixelkiln[x]) expanded."""
    meta = project()
    reqs, todo, seen = [Requirement(r) for r in meta["dependencies"]], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in meta["optional-dependencies"][extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == canonicalize_name(meta["name"]):
                todo.extend(req.extras)
            else:
                reqs.append(req)
    return reqs


def pulled(extras: tuple[str, ...]) -> set[str]:
    """Names that installing the project with ``extras`` pulls in: its own requirements, then
    transitively through the metadata of the distributions installed here (on this platform)."""
    env = {key: str(value) for key, value in default_environment().items()}
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = direct(extras)
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        names.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue  # not installed here (onnxruntime-gpu): its own requirements stay unread
        for text in requires:
            sub = Requirement(text)
            marker, sub.marker = sub.marker, None
            if marker is None or any(
                marker.evaluate({**env, "extra": e}) for e in ("", *req.extras)
            ):
                todo.append(sub)
    return names


def test_no_combination_of_extras_pulls_both_onnx_runtimes() -> None:
    extras = sorted(project()["optional-dependencies"])
    assert {"server", "cpu", "cuda", "dev"} <= set(extras)
    for k in range(len(extras) + 1):
        for combo in itertools.combinations(extras, k):
            if {"cpu", "cuda"} <= set(combo):
                continue  # the two runtimes themselves: documented as "pick one"
            both = ORT & pulled(combo)
            assert len(both) < 2, f"extras {combo} pull both {sorted(both)}"


def test_each_runtime_comes_from_its_own_extra() -> None:
    assert not ORT & pulled(("server",)), "server must leave the runtime to cpu/cuda"
    assert not ORT & pulled(("server", "dev", "quant", "images"))
    assert ORT & pulled(("server", "cpu")) == {"onnxruntime"}
    cuda = pulled(("server", "cuda"))
    assert ORT & cuda == {"onnxruntime-gpu"}
    assert "torchao" in cuda
    assert {"msgpack", "prometheus-client"} <= pulled(("server",))
    assert "hypothesis" in pulled(("dev",))


def test_installed_environment_has_one_onnx_runtime() -> None:
    installed = set()
    for name in ORT:
        try:
            md.distribution(name)
            installed.add(name)
        except md.PackageNotFoundError:
            pass
    assert len(installed) < 2, f"both installed: {sorted(installed)}; uninstall one of them"


# The constraints file: exact versions of what CI tested.


def constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!]+)", line)
        assert match, f"constraints.txt: {line!r} is not NAME==VERSION"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = match[2]
    return pins


def test_constraints_pin_every_direct_dependency_ci_installs() -> None:
    pins = constraints()
    assert canonicalize_name(project()["name"]) not in pins
    assert pins.get("torch") == "2.13.0", "torch stays at the release of the local CPU build"
    for req in direct(CI_EXTRAS):
        name = canonicalize_name(req.name)
        assert name in pins, (
            f"constraints.txt misses {name} ({req}): "
            "install it in .venv, then run tools/freeze_constraints.py"
        )
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside the project's {req.specifier}"
        )


def test_ci_and_readme_install_with_the_constraints() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    for text, where in ((ci, ".ci/run"), (readme, "README.md")):
        installs = [ln for ln in text.splitlines() if "pip install" in ln and "-e " in ln]
        assert installs, f"{where} has no editable install"
        for line in installs:
            if "[server" in line and "cuda" not in line:
                assert "-c constraints.txt" in line, f"{where}: {line.strip()}"
                assert "server,cpu,dev" in line, f"{where}: {line.strip()}"


def test_freeze_tool_keeps_the_format(tmp_path: Path) -> None:
    """The generator's filter on a pip freeze: no editable or direct-URL lines, no project,
    local version labels dropped (torch 2.13.0+cpu pins 2.13.0, which a CUDA machine resolves
    to its CUDA build of the same release)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import freeze_constraints
    finally:
        sys.path.remove(str(ROOT / "tools"))
    freeze = "\n".join([
        "# Editable Git install with no remote (pixelkiln==0.1.0)",
        "-e /work/main",
        "Torch==2.13.0+cpu",
        "numpy==2.4.6",
        "pip==26.3",
        "foo @ file:///tmp/foo.whl",
        "PixelKiln==0.1.0",
        "prometheus_client==0.26.0",
    ])  # fmt: skip
    pins = freeze_constraints.pins_from_freeze(freeze, project="pixelkiln")
    assert pins == ["numpy==2.4.6", "prometheus-client==0.26.0", "torch==2.13.0"]


def test_onnx_backend_without_a_runtime_names_the_extras(tmp_path: Path, monkeypatch) -> None:
    """`server` alone has no ONNX Runtime: loading an export says which extra brings one."""
    from dataclasses import replace

    from pixelkiln_server.backends import onnx_backend
    from pixelkiln_server.backends.base import LoadOptions
    from pixelkiln_server.catalogue import ONNX_MANIFEST, lookup
    from pixelkiln_server.errors import FailedPrecondition

    (tmp_path / "unet.onnx").write_bytes(b"")
    (tmp_path / ONNX_MANIFEST).write_text(json.dumps({"components": {"unet": "unet.onnx"}}))
    real = onnx_backend.importlib.util.find_spec
    monkeypatch.setattr(
        onnx_backend.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    spec = replace(lookup(str(tmp_path)), name="export")
    with pytest.raises(FailedPrecondition, match=r"pixelkiln\[cpu\].*pixelkiln\[cuda\]"):
        onnx_backend.OnnxBackend().load(spec, LoadOptions(device="cpu"))
