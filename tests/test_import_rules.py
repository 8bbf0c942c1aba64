"""The module map's "may import" rules, checked on the source (ast), so the map cannot drift.

A rule names a group of modules and the modules of this package it must never import (directly;
any import, even inside a function). The runner side never imports the front, the front never
imports torch, protobuf stops at the services.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from check_portability import parse  # noqa: E402 - ast.parse without the CPython 3.11 flake

sys.path.remove(str(ROOT / "tools"))

PACKAGE = Path(__file__).resolve().parent.parent / "server" / "pixelkiln_server"

FRONT = (
    "pixelkiln_server.engine.core",
    "pixelkiln_server.engine.pool",
    "pixelkiln_server.engine.runner_client",
    "pixelkiln_server.engine.live",
    "pixelkiln_server.engine.scheduler",
    "pixelkiln_server.engine.jobs",
    "pixelkiln_server.services",
    "pixelkiln_server.app",
    "pixelkiln_server.cli",
    "pixelkiln_server.serve_args",
    "pixelkiln_server.convert",
)
WIRE = ("grpc", "google.protobuf", "pixelkiln.v1")

# group (module prefixes) -> what it must not import (module prefixes)
RULES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    # The model side of the runner port knows only messages.
    (
        (
            "pixelkiln_server.runners",
            "pixelkiln_server.engine.registry",
            "pixelkiln_server.engine.memory",
        ),
        FRONT + WIRE,
    ),
    # Backends never import the engine, the runners or the wire.
    (
        ("pixelkiln_server.backends",),
        ("pixelkiln_server.engine", "pixelkiln_server.runners") + FRONT + WIRE,
    ),  # fmt: skip
    # The front's engine: no protobuf, no torch (the models are in the runners).
    (
        (
            "pixelkiln_server.engine.core",
            "pixelkiln_server.engine.pool",
            "pixelkiln_server.engine.runner_client",
            "pixelkiln_server.engine.live",
            "pixelkiln_server.engine.scheduler",
            "pixelkiln_server.engine.jobs",
        ),
        (*WIRE, "torch", "diffusers", "pixelkiln_server.services", "pixelkiln_server.app"),
    ),
    # The domain imports nothing of the layers above it.
    (
        (
            "pixelkiln_server.types",
            "pixelkiln_server.errors",
            "pixelkiln_server.capabilities",
        ),
        ("pixelkiln_server.engine", "pixelkiln_server.runners", "pixelkiln_server.backends")
        + FRONT
        + WIRE
        + ("torch",),
    ),  # fmt: skip
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(rules: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        for group, banned in rules:
            if not any(name == g or name.startswith(g + ".") for g in group):
                continue
            for line, target in imports(path):
                if any(target == b or target.startswith(b + ".") for b in banned):
                    out.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}")
    return sorted(set(out))


def test_the_module_map_import_rules_hold() -> None:
    assert violations(RULES) == []


def test_the_check_finds_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: the host importing the pool would be reported."""
    bad = [(("pixelkiln_server.runners.host",), ("pixelkiln_server.engine.registry",))]
    found = violations(bad)
    assert any("runners/host.py" in v and "engine.registry" in v for v in found), found


@pytest.mark.parametrize("module", ["runners.host", "runners.transports", "runners.port"])
def test_the_runner_side_imports_without_the_front(module: str) -> None:
    """Importing the runner side in a fresh interpreter loads none of the front's modules."""
    import subprocess
    import sys

    code = (
        f"import sys, importlib; importlib.import_module('pixelkiln_server.{module}'); "
        "front = [m for m in sys.modules if m.startswith(('pixelkiln_server.engine.core', "
        "'pixelkiln_server.engine.pool', 'pixelkiln_server.services', 'grpc'))]; "
        "print(front); sys.exit(1 if front else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
