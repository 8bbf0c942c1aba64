"""Per-frame time of a live img2img frame in-process: the pipeline vs the lean path.

    python benchmarks/live_path.py [--runs 20] [--sizes 64 128] [--guidance 1.0] [--threads N]
                                   [--models ...] [--quick]

Arms, interleaved round by round, on the same loaded model and the same frames (a few
random sketches in turn), 2 denoising steps (steps 4, strength 0.5), CFG off by default:

- ``pipeline``: the backend's ordinary img2img (a non-live request: diffusers' pipeline);
- ``lean, eager``: the lean live path (backends/live_path.py), module calls eager;
- ``lean``: the lean path as served: on the CPU its module calls replay recorded graphs
  (backends/traced.py);
- ``lean + stream batch``: one batched UNet call per frame (stream_batch.py), steady state;
- ``lean + tiny AE``: encode and decode with a tiny random AutoencoderTiny in vae_tiny/
  (its size is TAESD's shape scaled down; the ratio says what skipping the KL VAE is worth
  at these sizes, not TAESD's real cost).

Each model is loaded from a temporary copy of its folder with that vae_tiny/ added.
Measured, never asserted; absolute times only mean something on a GPU.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS_DIR,
    compare,
    env_line,
    environment,
    interleave,
    percentile,
    pin_threads,
    print_table,
    write_json,
)

MODELS = ("tiny-random", "pixelkiln-textures")
ARMS = ("pipeline", "lean, eager", "lean", "lean + stream batch", "lean + tiny AE")


def load(name: str, home: Path, tmp: Path, device: str) -> Any:
    """``name`` loaded from a copy of its folder that has a tiny random vae_tiny/ (the
    models of MODELS; others load as the daemon loads them)."""
    import json

    from pixelkiln_server.backends import tiny_vae
    from pixelkiln_server.backends.base import LoadOptions
    from pixelkiln_server.backends.diffusers_backend import DiffusersBackend
    from pixelkiln_server.backends.tiny_random import ensure_tiny_random
    from pixelkiln_server.catalogue import PRESETS, SHIPPED_FOLDER

    spec = PRESETS[name]
    if name not in MODELS:  # tiny-flux, tiny-z-image, ...: built in code, no vae_tiny/ (the
        # DiT lean paths have no tiny autoencoder: that arm is the plain lean frame)
        from pixelkiln_server.backends import registry

        return registry.get(spec.backend).load(spec, LoadOptions(device=device, home=home))
    source = ensure_tiny_random(home / "models") if name == "tiny-random" else SHIPPED_FOLDER
    folder = tmp / name
    shutil.copytree(source, folder)
    channels = json.loads((folder / "vae" / "config.json").read_text())["latent_channels"]
    tiny_vae.add_random_to_folder(folder, channels)
    spec = replace(spec, backend="diffusers", source=str(folder))
    return DiffusersBackend().load(spec, LoadOptions(device=device, home=home))


def arms_for(model: Any, name: str, size: int, guidance: float) -> dict[str, Any]:
    import numpy as np

    from pixelkiln_server.backends.base import NoHooks
    from pixelkiln_server.types import (
        DecodedInputs,
        EncodedImage,
        Encoding,
        GenerationRequest,
        Priority,
    )

    rng = np.random.default_rng(0)
    frames = [
        DecodedInputs(init_rgb=(rng.random((size, size, 3)) * 255).astype(np.uint8))
        for _ in range(4)
    ]
    live = GenerationRequest(
        prompt="red brick wall",
        model=name,
        width=size,
        height=size,
        steps=4,
        strength=0.5,
        seed=7,
        guidance_scale=guidance,
        init_image=EncodedImage(b"frame", Encoding.PNG),
        priority=Priority.LIVE,
    )
    requests = {
        "pipeline": replace(live, priority=Priority.INTERACTIVE),
        "lean, eager": live,  # the lean path with its recorded graphs switched off
        "lean": live,
        "lean + stream batch": replace(live, stream_batch=True, stream_id=f"bench-{size}"),
        "lean + tiny AE": replace(live, tiny_autoencoder=True),
    }
    counters = dict.fromkeys(requests, 0)
    hooks = NoHooks()

    def arm(key: str) -> Any:
        def run() -> None:
            n = counters[key] = counters[key] + 1
            request = replace(requests[key], client_request_id=str(n))
            graphs = model._lean.graphs if model._lean is not None else None
            if graphs is not None:
                graphs.enabled = key != "lean, eager"
            model.generate(request, frames[n % 4], hooks)

        return run

    out = {key: arm(key) for key in requests}
    for key in requests:  # warm-up: fills the stream batch's pipeline, records the graphs
        for _ in range(4):
            out[key]()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--guidance", type=float, default=1.0, help="1.0: CFG off")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "live_path.json")
    args = parser.parse_args()
    runs = 4 if args.quick else args.runs
    pin_threads(args.threads)
    env = environment()
    print(env_line(env))
    results: dict[str, Any] = {"environment": env, "args": vars(args) | {"out": str(args.out)}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixelkiln-live-path-") as tmp:
        home = Path(tmp) / "home"
        for name in args.models:
            model = load(name, home, Path(tmp), args.device)
            for size in args.sizes:
                times = interleave(arms_for(model, name, size, args.guidance), runs)
                summary = compare(times, "pipeline")
                results[f"{name}@{size}"] = {"times_ms": times, "summary": summary}
                base50 = percentile(times["pipeline"], 50)
                base99 = percentile(times["pipeline"], 99)
                for arm in ARMS:
                    p50, p99 = percentile(times[arm], 50), percentile(times[arm], 99)
                    rows.append([name, size, arm, p50, p99, p50 / base50, p99 / base99])
            model.release()
    print(
        f"\nper frame, {runs} interleaved runs, 2 denoising steps, guidance {args.guidance:g}, "
        "ratios against the pipeline in the same run"
    )
    print_table(["model", "size", "arm", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio"], rows)
    print(f"\nwrote {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
