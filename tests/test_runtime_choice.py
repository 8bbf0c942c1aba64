"""The runtime choice (backends/runtime_choice.py): the shipped model served from its ONNX
export gives what torch gives, to float tolerance, in every mode it routes (centred and
mirrored txt2img, tiling, img2img, inpainting, live frames); what the export cannot serve stays
on torch; ``auto`` measures once per machine and caches it; bad combinations are refused."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pixelkiln import AsyncClient
from pixelkiln_server.backends import registry, runtime_choice
from pixelkiln_server.backends.base import LoadOptions, NoHooks
from pixelkiln_server.capabilities import declared
from pixelkiln_server.catalogue import SHIPPED_MODEL, lookup
from pixelkiln_server.errors import FailedPrecondition, InvalidArgument
from pixelkiln_server.model_options import ModelOptions
from pixelkiln_server.types import (
    DecodedInputs,
    EncodedImage,
    Encoding,
    GenerationRequest,
    Priority,
    Tiling,
)

from .conftest import home_dir, png_bytes, running_daemon

# Measured: a mean |difference| of 2e-7 and a max of 6e-6 between the runtimes (fp32 both).
TOLERANCE = 1e-4


class Notes(NoHooks):
    def __init__(self) -> None:
        self.notes: dict[str, str] = {}

    def on_note(self, key: str, value: str) -> None:
        self.notes[key] = value


def load(runtime: str, home: Path | None = None, name: str = SHIPPED_MODEL) -> Any:
    spec = lookup(name)
    spec = replace(spec, options=ModelOptions(runtime=runtime))
    options = LoadOptions(device="cpu", offline=True, home=home or home_dir())
    return registry.get(spec.backend).load(spec, options)


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any]:
    return load("torch"), load("onnx")


def image_input(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3)).astype(np.uint8)


def requests() -> list[tuple[str, GenerationRequest, DecodedInputs]]:
    base = GenerationRequest(prompt="red brick wall", width=64, height=64, steps=4, seed=0)
    base = replace(base, guidance_scale=4.0)
    init = EncodedImage(b"", Encoding.PNG)
    return [
        # seeds 0 and 2: one mirrored variation, one not (variation.mirrored)
        ("txt2img seed 0", base, DecodedInputs()),
        ("txt2img seed 2, two images", replace(base, seed=2, num_images=2), DecodedInputs()),
        ("tiled xy", replace(base, tiling=Tiling.XY), DecodedInputs()),
        ("tiled x", replace(base, tiling=Tiling.X, seed=5), DecodedInputs()),
        (
            "img2img",
            replace(base, init_image=init, strength=0.6),
            DecodedInputs(init_rgb=image_input(64, 1)),
        ),
        (
            "live frame",
            replace(
                base,
                init_image=init,
                strength=0.5,
                steps=2,
                guidance_scale=1.0,
                priority=Priority.LIVE,
            ),
            DecodedInputs(init_rgb=image_input(64, 3)),
        ),
    ]


@pytest.mark.parametrize("case", range(len(requests())), ids=[c[0] for c in requests()])
def test_the_export_serves_what_torch_serves_to_float_tolerance(pair: Any, case: int) -> None:
    torch_model, onnx_model = pair
    assert torch_model.active_options()["runtime"] == "torch"
    assert onnx_model.active_options()["runtime"].startswith("onnx")
    _, request, inputs = requests()[case]
    hooks = Notes()
    want = torch_model.generate(request, inputs, NoHooks())
    got = onnx_model.generate(request, inputs, hooks)
    assert len(got) == len(want) == request.num_images
    for a, b in zip(want, got, strict=True):
        assert a.shape == b.shape == (64, 64, 3)
        assert float(np.abs(a - b).max()) < TOLERANCE
    if request.priority is Priority.LIVE:
        assert hooks.notes["lean"].startswith("not applied: ONNX Runtime")


def test_mirroring_and_centring_are_applied_on_the_export(pair: Any) -> None:
    """Without them the export would differ by whole pixels: a check that the tolerance test
    above is not passing on two copies of one runtime."""
    torch_model, onnx_model = pair
    request = GenerationRequest(
        prompt="gem", width=64, height=64, steps=2, seed=0, guidance_scale=4.0
    )
    raw = onnx_model._route.onnx._generate(request, DecodedInputs(), NoHooks())[0]
    served = onnx_model.generate(request, DecodedInputs(), NoHooks())[0]
    assert float(np.abs(raw - served).mean()) > 0.01
    assert (
        float(np.abs(torch_model.generate(request, DecodedInputs(), NoHooks())[0] - served).max())
        < TOLERANCE
    )


def count_routed(model: Any) -> list[GenerationRequest]:
    seen: list[GenerationRequest] = []
    inner = model._route.onnx.generate

    def counting(request: GenerationRequest, inputs: Any, hooks: Any) -> Any:
        seen.append(request)
        return inner(request, inputs, hooks)

    model._route.onnx.generate = counting
    return seen


def test_what_the_export_cannot_serve_stays_on_torch(pair: Any) -> None:
    _, model = pair
    seen = count_routed(model)
    try:
        frame = GenerationRequest(
            prompt="gem",
            width=64,
            height=64,
            steps=2,
            seed=1,
            guidance_scale=1.0,
            init_image=EncodedImage(b"", Encoding.PNG),
            strength=0.5,
            priority=Priority.LIVE,
        )
        inputs = DecodedInputs(init_rgb=image_input(64, 4))
        model.generate(frame, inputs, NoHooks())
        assert len(seen) == 1
        hooks = Notes()
        model.generate(replace(frame, stream_batch=True, stream_id="s"), inputs, hooks)
        model.generate(replace(frame, stream_id="s", stream_batch=True), inputs, hooks)
        assert hooks.notes["lean"] == "applied"  # torch's lean path has stream batch
        # Inpainting decodes with the init image's GroupNorm statistics (torch only).
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
        inpaint = replace(frame, priority=Priority.INTERACTIVE, mask=frame.init_image)
        model.generate(inpaint, DecodedInputs(init_rgb=inputs.init_rgb, mask=mask), NoHooks())
        # 72 is a multiple of 8 (torch serves it) but the exported UNet (three down blocks:
        # sides in multiples of 32) halves it unevenly.
        odd = GenerationRequest(prompt="gem", width=72, height=64, steps=1, seed=1)
        (image,) = model.generate(replace(odd, guidance_scale=4.0), DecodedInputs(), NoHooks())
        assert image.shape == (64, 72, 3)
        assert len(seen) == 1
        square = replace(odd, width=96, guidance_scale=4.0)
        model.generate(square, DecodedInputs(), NoHooks())
        assert len(seen) == 2
    finally:
        del model._route.onnx.generate


def test_the_export_of_a_wrapping_model_declares_tiling(pair: Any) -> None:
    _, model = pair
    folder = Path(model._route.onnx.folder)
    manifest = json.loads((folder / "pixelkiln_onnx.json").read_text())
    assert manifest["padding"] == "circular"
    assert (folder / "pixelkiln.json").is_file()  # vocabulary and preview factors travel
    spec = lookup(str(folder))
    assert spec.backend == "onnx" and spec.variation_mirror and spec.variation_low_freq > 0
    assert declared(spec).tiling == ("circular",)
    assert model._route.onnx.preview_factors is not None


def test_auto_measures_once_per_machine_and_caches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_choice, "FASTER", 100.0)  # any measurement picks ONNX
    monkeypatch.setattr(runtime_choice, "STEADY_SPREAD", math.inf)  # kept however busy CI is
    monkeypatch.setattr(runtime_choice, "MEASURE_BUDGET_S", math.inf)
    model = load("auto", tmp_path, "tiny-random")
    first = model.active_options()["runtime"]
    assert first.startswith("onnx (measured: ONNX Runtime takes")
    (record,) = tmp_path.glob(f"{runtime_choice.CACHE_DIR}/*/measured-*.json")
    saved = json.loads(record.read_text())
    assert saved["runtime"] == "onnx"
    assert set(saved["timings"]) == {"txt2img/torch", "txt2img/onnx", "live/torch", "live/onnx"}
    assert all(v > 0 for v in saved["timings"].values())

    def no_measuring(*args: Any) -> Any:
        raise AssertionError("measured again")

    monkeypatch.setattr(runtime_choice, "measure", no_measuring)
    again = load("auto", tmp_path, "tiny-random")
    assert again.active_options()["runtime"].endswith(", cached)")
    assert again._route is not None
    record.unlink()  # measured again, now in torch's favour
    monkeypatch.undo()
    monkeypatch.setattr(runtime_choice, "FASTER", 0.0)
    monkeypatch.setattr(runtime_choice, "STEADY_SPREAD", math.inf)
    monkeypatch.setattr(runtime_choice, "MEASURE_BUDGET_S", math.inf)
    third = load("auto", tmp_path, "tiny-random")
    assert third._route is None and third.active_options()["runtime"].startswith("torch (")
    assert json.loads(record.read_text())["runtime"] == "torch"


def test_an_unsteady_measurement_is_used_once_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine busy with other programs the probes disagree (one start measured 0.03x
    and kept it for good): such a measurement serves this run and is taken again next time."""
    busy = runtime_choice.Choice(
        "onnx", "measured: ONNX Runtime takes 0.03x torch's time (unsteady: ...)", {}, False
    )
    calls: list[int] = []

    def measured(*args: Any) -> runtime_choice.Choice:
        calls.append(1)
        return busy

    monkeypatch.setattr(runtime_choice, "measure", measured)
    first = load("auto", tmp_path, "tiny-random")
    assert "unsteady" in first.active_options()["runtime"]
    assert not list(tmp_path.glob(f"{runtime_choice.CACHE_DIR}/*/measured-*.json"))
    load("auto", tmp_path, "tiny-random")
    assert len(calls) == 2  # measured again at the next start


def test_probes_that_disagree_are_unsteady(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]  # a fake clock: each call takes the time it is given, nothing is timed

    class Timed:
        def __init__(self, seconds: dict[str, float]) -> None:
            self.seconds = seconds

        def generate(self, request: Any, inputs: Any, hooks: Any) -> None:
            clock[0] += self.seconds[request.priority.value]

    kinds = ("txt2img", "live")
    probes = {k: (SimpleNamespace(priority=SimpleNamespace(value=k)), None) for k in kinds}
    monkeypatch.setattr(runtime_choice, "_probes", lambda model: probes)
    monkeypatch.setattr(runtime_choice.time, "perf_counter", lambda: clock[0])
    torch_side = Timed({"txt2img": 0.2, "live": 0.2})
    agreeing = runtime_choice.measure(torch_side, Timed({"txt2img": 0.1, "live": 0.12}))  # type: ignore[arg-type]
    apart = runtime_choice.measure(torch_side, Timed({"txt2img": 0.02, "live": 0.3}))  # type: ignore[arg-type]
    slow = runtime_choice.measure(
        Timed({"txt2img": 9.0, "live": 9.0}), Timed({"txt2img": 4.5, "live": 4.5})
    )  # type: ignore[arg-type]
    assert agreeing.steady and not apart.steady and not slow.steady  # slow: over 30 s
    assert "unsteady" in apart.why and "unsteady" not in agreeing.why


def test_auto_keeps_torch_and_says_why_when_the_export_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter bug")

    monkeypatch.setattr("pixelkiln_server.onnx_export.export_onnx", broken)
    model = load("auto", tmp_path, "tiny-random")
    assert model._route is None
    assert model.active_options()["runtime"] == "torch (the ONNX export failed: RuntimeError)"
    with pytest.raises(FailedPrecondition, match="runtime: exporting tiny-random"):
        load("onnx", tmp_path, "tiny-random")
    assert not list(tmp_path.glob(f"{runtime_choice.CACHE_DIR}/*"))  # no half-written export


def test_the_cache_key_follows_what_the_export_copies(pair: Any) -> None:
    """The scheduler's config travels in the export's manifest: a change of it (a scheduler
    preset) must not reuse an export made with the old one."""
    _, model = pair
    key = runtime_choice.weights_key(model)
    pipe = model.pipe
    original = pipe.scheduler
    try:
        pipe.scheduler = type(original).from_config(original.config, timestep_spacing="leading")
        assert runtime_choice.weights_key(model) != key
    finally:
        pipe.scheduler = original
    assert runtime_choice.weights_key(model) == key


def test_runtime_onnx_refuses_torch_options_by_name() -> None:
    with pytest.raises(InvalidArgument) as err:
        ModelOptions(runtime="onnx", compile=True)
    assert err.value.field == "runtime" and "compile" in str(err.value)
    with pytest.raises(InvalidArgument, match="must be one of auto, torch, onnx"):
        ModelOptions(runtime="tensorrt")


def fake_model(**changes: Any) -> Any:
    spec = replace(lookup("tiny-random"), options=ModelOptions(runtime="auto"))
    euler = type("EulerDiscreteScheduler", (), {})()
    pipe = SimpleNamespace(
        scheduler=euler,
        unet=SimpleNamespace(config=SimpleNamespace(in_channels=changes.pop("unet_in", 4))),
        vae=SimpleNamespace(config=SimpleNamespace(latent_channels=4)),
    )
    values = {
        "spec": spec,
        "device": "cpu",
        "dtype": "fp32",
        "pipe": pipe,
        "memory_bytes": lambda: 1,
    }
    if "scheduler" in changes:
        pipe.scheduler = changes.pop("scheduler")
    values.update(changes)
    return SimpleNamespace(**values)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"device": "cuda:0"}, "runs on cuda:0"),
        ({"dtype": "fp16"}, "float32"),
        ({"unet_in": 9}, "inpainting inputs"),
        ({"memory_bytes": lambda: 2**40}, "not exported at load"),
        ({"scheduler": object()}, "Euler discrete"),
    ],
)
def test_why_a_model_is_not_routed(changes: dict[str, Any], reason: str | None) -> None:
    got = runtime_choice.why_not(fake_model(**changes), "auto")
    assert got is None if reason is None else reason in (got or "")


def test_sdxl_stays_on_torch_under_auto_and_is_refused_under_onnx() -> None:
    model = fake_model(spec=replace(lookup("tiny-sdxl"), options=ModelOptions(runtime="onnx")))
    with pytest.raises(FailedPrecondition, match="SD-family"):
        runtime_choice.attach(model, home_dir())


async def test_a_daemon_reports_the_runtime_and_serves_tiles_from_the_export() -> None:
    options = {SHIPPED_MODEL: ModelOptions(runtime="onnx")}
    async with running_daemon(default_model=SHIPPED_MODEL, model_options=options) as d:
        client = AsyncClient(d.address, timeout=60)
        try:
            status = await client.status()
            (loaded,) = [m for m in status.models if m.name == SHIPPED_MODEL]
            assert loaded.options["runtime"] == "onnx (asked for)"
            # The onnx backend refused tiling before it knew its export wraps.
            result = await client.generate("red brick wall", tiling="xy", steps=2, seed=3)
            assert result.images[0].seam is not None and result.images[0].width == 64
            assert json.loads(result.recipe_json)["runtime"] == "onnx"
            # Inpainting stays on torch, and its recipe says nothing (torch is the default).
            mask = np.zeros((64, 64), np.uint8)
            mask[:32] = 255
            inpainted = await client.generate(
                "red brick wall",
                init_image=png_bytes(image_input(64, 5)),
                mask=png_bytes(mask),
                steps=2,
                seed=3,
            )
            assert "runtime" not in json.loads(inpainted.recipe_json)
        finally:
            await client.close()


def test_using_an_export_prunes_the_models_older_ones(tmp_path: Path) -> None:
    """A changed model (new weights hash) leaves its old exports behind; the next use of an
    export keeps the newest other one and removes the rest (and a day-old temporary)."""
    load("onnx", tmp_path, "tiny-random")
    (current,) = (tmp_path / runtime_choice.CACHE_DIR).glob("tiny-random-*")
    old = []
    for i, key in enumerate(("1" * 16, "2" * 16, "3" * 16)):
        stale = current.parent / f"tiny-random-{key}"
        shutil.copytree(current, stale)
        then = time.time() - 3600.0 * (i + 1)
        os.utime(stale, (then, then))
        old.append(stale)
    temp = current.parent / f".tiny-random-{'4' * 16}.tmp-abcd"
    temp.mkdir()
    os.utime(temp, (time.time() - 2 * 86400.0,) * 2)
    other = current.parent / f"pixelkiln-textures-{'5' * 16}"
    other.mkdir()
    again = load("onnx", tmp_path, "tiny-random")
    assert again._route is not None and current.is_dir()
    assert old[0].is_dir() and not old[1].exists() and not old[2].exists()
    assert not temp.exists() and other.is_dir()


def test_large_calls_stay_on_torch() -> None:
    """ONNX Runtime's attention memory grows with the square of the pixels: the shipped model
    at 2048x2048 took 21.7 GB and the kernel killed the runner (torch: linear)."""
    from types import SimpleNamespace

    route = runtime_choice.OnnxRoute(
        SimpleNamespace(wraps=True), runtime_choice.Choice("onnx", "", {}), 32, False
    )
    base = GenerationRequest(prompt="x", width=512, height=512, steps=1, seed=1)
    assert route.serves(replace(base, guidance_scale=0.0, num_images=2))
    assert route.serves(replace(base, guidance_scale=4.0))  # guidance doubles the batch
    assert not route.serves(replace(base, guidance_scale=4.0, num_images=2))
    assert not route.serves(replace(base, width=1024, height=1024, guidance_scale=0.0))
    small = replace(base, width=256, height=256, guidance_scale=4.0, num_images=8)
    assert route.serves(small)
