"""benchmarks/gpu_device_run.sh on the CPU: the row order, per-row caps, the overall budget and
the incremental results that a GPU run relies on (the GPU run itself needs a lent device).

The wrapper's logic runs with a stand-in row script (deterministic: one that measures, one that
hangs until its cap kills it, one that fails); ``-m slow`` runs the real ``--cpu-smoke`` rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_device_run.sh"

STAND_IN = """\
import argparse, json, sys, time
p = argparse.ArgumentParser()
p.add_argument("--cpu-smoke", action="store_true")
p.add_argument("--models"); p.add_argument("--variants"); p.add_argument("--budget-s")
p.add_argument("--rows-jsonl"); p.add_argument("--out")
a = p.parse_args()
with open(a.rows_jsonl, "a") as f:
    f.write(json.dumps({"env": {"gpu": "stand-in"}, "cpu_smoke": a.cpu_smoke}) + "\\n")
    for v in a.variants.split(","):
        f.write(json.dumps({"model": a.models, "variant": v, "stage": "denoise_step",
                            "ms": 1.5, "budget_s": a.budget_s}) + "\\n")
if a.models == "sdxl-turbo":
    time.sleep(3600)  # killed by its cap
sys.exit(3 if a.models == "z-image-turbo" else 0)
"""


def run(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def rows(out: Path) -> list[dict]:
    return json.loads((out / "gpu_turbo.json").read_text())["rows"]


def test_caps_budget_and_failures_leave_every_row_in_the_table(tmp_path: Path) -> None:
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)
    out = tmp_path / "out"
    groups = "sd-turbo:eager,compile:100 z-image-turbo:eager:100 sdxl-turbo:eager:5 "
    groups += "flux.1-schnell:eager,compile:100"
    # Budget 60 s: the hanging sdxl group is capped at 5 s, leaving < 56 s (MIN_ROW_S) for FLUX.
    budget = {"BUDGET_S": "60", "MIN_ROW_S": "56"}
    proc = run(out, "--dry-run", ROWS=groups, GPU_TURBO=str(stand_in), **budget)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = {(r["model"], r["variant"], r["stage"]): r for r in rows(out)}
    # measured rows, in the order the groups ran, with their floors filled in
    assert got["sd-turbo", "eager", "denoise_step"]["ms"] == 1.5
    assert got["sd-turbo", "compile", "denoise_step"]["floor_ms"] == 1.1
    assert got["sd-turbo", "eager", "denoise_step"]["budget_s"] == "30"  # cap 60 (the budget) - 30
    # a failing group: its measured rows stay, plus a line with the exit status
    assert got["z-image-turbo", "eager", "-"]["skipped"] == "exit status 3 (see log.txt)"
    assert got["z-image-turbo", "eager", "denoise_step"]["ms"] == 1.5
    # the hanging group: what it wrote before the kill, and the cap
    assert "killed at the cap of 5 s" in got["sdxl-turbo", "eager", "-"]["skipped"]
    assert got["sdxl-turbo", "eager", "denoise_step"]["ms"] == 1.5
    # the budget: FLUX not started, both its variants listed as not reached
    for variant in ("eager", "compile"):
        assert "budget of 60 s was spent" in got["flux.1-schnell", variant, "-"]["skipped"]
        assert ("flux.1-schnell", variant, "denoise_step") not in got
    table = (out / "table.txt").read_text()
    assert "stand-in (cpu smoke)" in table  # the env line of the processes that ran
    ends = ("AE", "step", "steps")
    lines = [ln.split()[0] for ln in table.splitlines() if ln.rstrip().endswith(ends)]
    assert lines[0] == "sd-turbo" and lines[-1] == "flux.1-schnell"
    assert "== preflight" in (out / "log.txt").read_text()


def test_usage_error() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr


@pytest.mark.slow
def test_dry_run_measures_real_cpu_smoke_rows(tmp_path: Path, request: pytest.FixtureRequest):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("about 30 s: run with -m slow")
    out = tmp_path / "out"
    proc = run(out, "--dry-run", ROWS="sd-turbo:eager,compile:300")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = {(r["variant"], r["stage"]): r for r in rows(out)}
    for stage in ("denoise_step", "vae_decode", "tiny_ae_decode", "end_to_end+taesd img2img"):
        assert got["eager", stage]["ms"] > 0
    assert got["compile", "-"]["skipped"] == "needs CUDA (--cpu-smoke)"
    assert json.loads((out / "gpu_turbo.json").read_text())["cpu_smoke"] is True
