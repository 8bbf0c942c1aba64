"""Every shell example of README.md runs as written, so the README cannot drift from the code.

Each command of each fenced ``sh`` block runs with bash, in README order, in one temporary
folder holding the sample inputs of ``examples/``, against a ``pixelkiln serve`` child process
on the default model (the examples are written for it). The commands write ``pixelkiln``:
the venv's ``bin`` is first on PATH, as after ``. .venv/bin/activate``, and
``PIXELKILN_ADDRESS`` points the CLI at the test daemon (it answers on an ephemeral port, not
50051). A command that cannot run here is listed in ``SKIP`` with the reason; a README command
that is neither run nor listed fails, and so does a ``SKIP`` entry that no longer matches.
The ``python`` blocks run too, with the daemon's address in place of ``127.0.0.1:50051``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import ROOT, start_served

README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
README_ADDRESS = "127.0.0.1:50051"
TIMEOUT_S = 600

_INSTALL = "installs from PyPI into a new venv (minutes, network); .ci/run does it on a clean clone"
_HUB = "serves a real hub model: gigabytes of weights, no network here"
# Command prefixes, exactly as the README writes them, and why each cannot run in a test.
SKIP: dict[str, str] = {
    "python3 -m venv .venv": _INSTALL,
    ".venv/bin/pip install": _INSTALL,
    ".venv/bin/pixelkiln serve --model sd-turbo": _HUB,
    ".venv/bin/python -m pytest": "the test suite itself",
    "pixelkiln serve --model sd-turbo": _HUB,
    "pixelkiln serve --model sdxl-turbo": _HUB,
    "pixelkiln serve --model ./my-diffusers-folder": (
        "the reader's own folder; folder loads are tested in test_tiny_random.py"
    ),
    "pixelkiln serve --model ./checkpoint.safetensors": (
        "the reader's own checkpoint; single-file loads are tested in test_tiny_random.py"
    ),
    "pixelkiln serve --host 0.0.0.0": (
        "every interface on the fixed port 50051 with the reader's certificate; the binding "
        "rule and TLS are tested in test_security.py and test_security_config.py"
    ),
    ".venv/bin/ruff format .": "rewrites the working tree; .ci/run runs the gates",
    ".venv/bin/python tools/gen_protos.py": (
        "rewrites the generated stubs; test_contract.py fails when they are stale"
    ),
    ".venv/bin/python benchmarks/overhead.py": "a benchmark of minutes, measured, not asserted",
    ".venv/bin/python benchmarks/overhead_pool.py": (
        "a benchmark of minutes, measured, not asserted; test_bench_stats.py checks its pooling"
    ),
    ".venv/bin/python benchmarks/critical_path.py": (
        "a benchmark, measured, not asserted; test_tracepoints.py traces a request the same way"
    ),
}


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    outputs: tuple[str, ...]  # files the README says the command writes ("# -> a.png, b.png")


def _blocks(language: str) -> Iterator[tuple[int, list[str]]]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = None
    for number, line in enumerate(lines, 1):
        if start is None and line.strip() == f"```{language}":
            start, body = number + 1, []
        elif start is not None and line.strip() == "```":
            yield start, body
            start = None
        elif start is not None:
            body.append(line)


def shell_commands() -> list[Command]:
    """Each logical line of the ``sh`` blocks (backslash continuations joined)."""
    commands: list[Command] = []
    for start, body in _blocks("sh"):
        pending, first = "", 0
        for offset, line in enumerate(body):
            stripped = line.strip()
            if stripped.startswith("#"):
                if "->" in stripped and commands:  # what the previous command writes
                    named = re.findall(r"[\w./-]+\.(?:png|json)", stripped)
                    last = commands[-1]
                    outs = (*last.outputs, *(n for n in named if "..." not in n))
                    commands[-1] = Command(last.line, last.text, outs)
                continue
            if not stripped:
                continue
            if not pending:
                first = start + offset
            pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                commands.append(Command(first, pending.strip(), ()))
                pending = ""
    return commands


def skip_reason(command: Command) -> str | None:
    for prefix, reason in SKIP.items():
        if command.text.startswith(prefix):
            return reason
    return None


COMMANDS = shell_commands()


def _id(command: Command) -> str:
    return f"L{command.line}:{command.text.split('#')[0].strip()[:60]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    for sample in ("sketch.png", "base.png", "mask.png"):
        shutil.copy(EXAMPLES / sample, folder / sample)
    return folder


@pytest.fixture(scope="module")
def readme_daemon() -> Iterator[str]:
    """`pixelkiln serve` on the default model, as the README's first command starts it."""
    proc, address = start_served("--model", "pixelkiln-textures")
    yield address
    proc.terminate()
    proc.wait(timeout=30)


def _env(workdir: Path, address: str) -> dict[str, str]:
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PIXELKILN_ADDRESS": address,
        "PIXELKILN_HOME": str(home),  # token files and built models stay in the temp folder
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
    }


def _written(command: Command) -> list[str]:
    words = shlex.split(command.text, comments=True)
    named = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-o", "--output")]
    return list(command.outputs) if command.outputs else named  # "-o gems.png --count 8"


def _check_images(workdir: Path, names: list[str]) -> None:
    for name in names:
        path = workdir / name
        assert path.is_file(), f"{name} was not written"
        if path.suffix == ".png":
            with Image.open(path) as image:
                assert image.size[0] >= 1 and np.asarray(image).size > 0


def _run_live(command: Command, workdir: Path, env: dict[str, str]) -> None:
    """`pixelkiln live` runs until Ctrl+C: wait for its first frame, then interrupt it."""
    out = workdir / _written(command)[0]
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command.text}"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert "Traceback" not in output, output
    assert "frame" in output, output
    _check_images(workdir, [out.name])


@pytest.mark.parametrize("command", COMMANDS, ids=[_id(c) for c in COMMANDS])
def test_shell_example_runs_as_written(command: Command, workdir: Path, readme_daemon: str) -> None:
    reason = skip_reason(command)
    if reason:
        pytest.skip(reason)
    env = _env(workdir, readme_daemon)
    if command.text.startswith("pixelkiln live "):
        _run_live(command, workdir, env)
        return
    done = subprocess.run(
        ["bash", "-c", command.text],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"README line {command.line}: {command.text}\n{output}"
    assert "Traceback" not in output, output
    _check_images(workdir, _written(command))


def test_every_skip_entry_matches_a_readme_command() -> None:
    used = {prefix for prefix in SKIP for c in COMMANDS if c.text.startswith(prefix)}
    assert set(SKIP) == used, f"stale SKIP entries: {set(SKIP) - used}"


def test_shell_examples_are_found() -> None:
    texts = [c.text for c in COMMANDS]
    assert any(t.startswith("pixelkiln generate ") for t in texts)
    assert any(t.startswith("pixelkiln live ") for t in texts)
    joined = [c for c in COMMANDS if c.text.startswith("pixelkiln serve --host")]
    assert joined and "--tls-key daemon.key" in joined[0].text  # continuation lines joined


def python_snippets() -> list[tuple[int, str]]:
    return [(start, "\n".join(body)) for start, body in _blocks("python")]


@pytest.mark.parametrize("start,code", python_snippets(), ids=lambda v: str(v)[:12])
def test_python_example_runs(start: int, code: str, workdir: Path, readme_daemon: str) -> None:
    assert README_ADDRESS in code, f"README line {start}: the snippet names no daemon address"
    code = code.replace(README_ADDRESS, readme_daemon)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        env=_env(workdir, readme_daemon),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"README line {start}:\n{done.stdout}{done.stderr}"
    for name in re.findall(r"""save\(f?["']([\w{}.]+\.png)["']\)""", code):
        pattern = re.sub(r"\{[^}]*\}", "*", name)
        assert list(workdir.glob(pattern)), f"README line {start}: {name} was not written"


def test_examples_are_what_the_script_writes() -> None:
    """examples/*.png are tools/make_examples.py's output (regenerate them with it)."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import make_examples
    finally:
        sys.path.remove(str(ROOT / "tools"))
    for name, image in make_examples.images().items():
        with Image.open(EXAMPLES / name) as committed:
            assert committed.mode == image.mode, name
            assert np.array_equal(np.asarray(committed), np.asarray(image)), name
