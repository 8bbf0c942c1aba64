"""torch (diffusers backend) vs ONNX Runtime (onnx backend) on the CPU, side by side in one run.

    python benchmarks/onnx_cpu.py [--quick] [--runs N] [--out benchmarks/results/onnx_cpu.json]

tiny-random is exported once (cached under $PIXELKILN_HOME/onnx/), then each size (64x64 and
256x256, txt2img, 4 steps, guidance 0) runs through both backends' ``LoadedModel.generate``,
the call the daemon's worker makes, interleaved round by round. Reports medians, the
ONNX/torch ratio and the max abs difference between their images. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS_DIR,
    compare,
    env_line,
    environment,
    interleave,
    pin_threads,
    print_table,
    write_json,
)

from pixelkiln_server.catalogue import ONNX_MANIFEST, PRESETS, lookup  # noqa: E402
from pixelkiln_server.config import Limits, default_home  # noqa: E402
from pixelkiln_server.types import GenerationRequest  # noqa: E402
from pixelkiln_server.validation import resolve  # noqa: E402

SIZES = (64, 256)


def export_dir(home: Path) -> Path:
    """The exported tiny-random, built on first use (atomically, by run_export)."""
    out = home / "onnx" / "tiny-random-v1-seed0"
    if not (out / ONNX_MANIFEST).is_file():
        from pixelkiln_server.onnx_export import run_export

        args = argparse.Namespace(model="tiny-random", dir=out, fp16=False, home=home)
        args.offline = True
        if run_export(args) != 0:
            raise SystemExit(f"export to {out} failed")
    return out


def load_models(home: Path) -> tuple[Any, Any]:
    from pixelkiln_server.backends import registry
    from pixelkiln_server.backends.base import LoadOptions

    options = LoadOptions(device="cpu", home=home)
    tiny = PRESETS["tiny-random"]
    onnx_spec = lookup(str(export_dir(home)))
    return (
        registry.get(tiny.backend).load(tiny, options),
        registry.get(onnx_spec.backend).load(onnx_spec, options),
    )


def measure(size: int, runs: int, torch_model: Any, onnx_model: Any) -> dict[str, Any]:
    request, inputs = resolve(
        GenerationRequest(prompt="mossy cobblestone", width=size, height=size, seed=1),
        PRESETS["tiny-random"],
        Limits(),
    )
    from pixelkiln_server.backends.base import NoHooks

    hooks = NoHooks()
    ref = torch_model.generate(request, inputs, hooks)  # warm-up, and the parity check
    got = onnx_model.generate(request, inputs, hooks)
    times = interleave(
        {
            "torch": lambda: torch_model.generate(request, inputs, hooks),
            "onnxruntime": lambda: onnx_model.generate(request, inputs, hooks),
        },
        runs,
    )
    return {
        "steps": request.steps,
        "max_abs_diff": float(np.abs(ref[0] - got[0]).max()),
        "times": compare(times, "torch"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs (a smoke check)")
    parser.add_argument("--runs", type=int, default=0, help="runs per arm (default 20 / 8)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "onnx_cpu.json")
    args = parser.parse_args()
    pin_threads()
    env = environment()
    print(env_line(env))
    torch_model, onnx_model = load_models(default_home())
    results: dict[str, Any] = {"env": env, "model": "tiny-random", "sizes": {}}
    rows = []
    for size in SIZES:
        runs = args.runs or (3 if args.quick else (20 if size == 64 else 8))
        r = measure(size, runs, torch_model, onnx_model)
        results["sizes"][size] = r
        t, o = r["times"]["torch"], r["times"]["onnxruntime"]
        rows.append(
            [
                f"{size}x{size} x{r['steps']} steps",
                t["ms"]["median"],
                o["ms"]["median"],
                o["ratio_median"],
                f"{r['max_abs_diff']:.1e}",
                runs,
            ]
        )
    env["loadavg_1m_after"] = environment()["loadavg_1m"]
    print("\ntiny-random txt2img, LoadedModel.generate, medians in ms (interleaved)")
    print_table(["size", "torch ms", "onnxruntime ms", "ort/torch", "max abs diff", "runs"], rows)
    print(env_line(env))
    print(f"wrote {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
