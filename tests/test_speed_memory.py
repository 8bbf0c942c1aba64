"""Speed options, the memory budget, unloading and LoRA adapters, on tiny-random on the CPU.

What needs CUDA (fp8, CUDA graphs, offload, VRAM budgets) is checked here only for refusing
cleanly; torch.compile runs behind the ``slow`` marker, skipped unless ``pytest -m slow``
(compile + warm-up of tiny-random took 71 s with a cold inductor cache here, 18 s warm).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from pixelkiln import AsyncClient, Preview
from pixelkiln.v1 import generator_pb2 as gen_pb
from pixelkiln.v1 import generator_pb2_grpc as gen_grpc
from pixelkiln_server import cli, convert, recipe
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends import accel, lora
from pixelkiln_server.backends.base import LoadOptions
from pixelkiln_server.backends.tiny_random import TinyRandomBackend, ensure_tiny_random
from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.engine.memory import Resident, default_vram_budget, pick_victims
from pixelkiln_server.engine.registry import ModelRegistry
from pixelkiln_server.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from pixelkiln_server.model_options import LoraAdapter, ModelOptions
from pixelkiln_server.types import DecodedInputs, GenerationRequest, PreviewOptions

from .conftest import decode, home_dir, png_bytes, runner_models, running_daemon

TINY = PRESETS["tiny-random"]
# Extra models from a folder default to 512x512 and guidance 7.5: ask for tiny-random's own.
SIZE: dict[str, Any] = {"width": 64, "height": 64, "guidance_scale": 0.0}


class NoHooks:
    def on_step(self, step: int, total: int) -> bool:
        return False

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        pass


def load_tiny(**options: Any) -> Any:
    spec = replace(TINY, options=ModelOptions(**options))
    return TinyRandomBackend().load(spec, LoadOptions(home=home_dir()))


def run(model: Any, **overrides: Any) -> np.ndarray:
    request = GenerationRequest(prompt="brick", steps=2, seed=1, **SIZE)
    return model.generate(replace(request, **overrides), DecodedInputs(), NoHooks())[0]


@pytest.fixture(scope="module")
def tiny_folder() -> Path:
    return ensure_tiny_random(home_dir() / "models")


@pytest.fixture(scope="module")
def taesd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TAESD-shaped AutoencoderTiny with small channels and random weights, saved."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    vae = AutoencoderTiny(
        latent_channels=4,
        encoder_block_out_channels=(8,) * 4,
        decoder_block_out_channels=(8,) * 4,
        num_encoder_blocks=(1,) * 4,
        num_decoder_blocks=(1,) * 4,
    )
    folder = tmp_path_factory.mktemp("taesd")
    vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lora_dir(tiny_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 LoRA on tiny-random's UNet attention (random, non-zero B), saved the way
    diffusers' trainers save one (``save_lora_weights``)."""
    pytest.importorskip("peft")
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(tiny_folder, subfolder="unet")
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers)
    return folder


@pytest_asyncio.fixture(scope="module")
async def fast(tiny_folder: Path, taesd: Path, lora_dir: Path) -> AsyncIterator[Daemon]:
    """tiny-random (default), ``fast`` (CUDA's defaults forced on, a tiny VAE for previews and
    live decode) and ``styled`` (a LoRA adapter), all from the same weights."""
    options = {
        "fast": ModelOptions(
            channels_last=True,
            fuse_qkv=True,
            sdpa=True,
            tiny_vae=str(taesd),
            tiny_vae_decode=True,
        ),
        "styled": ModelOptions(loras=(LoraAdapter("detail", str(lora_dir), 0.5),)),
    }
    folder = str(tiny_folder)
    async with running_daemon(
        extra_models={"fast": folder, "styled": folder}, model_options=options
    ) as d:
        yield d


def loaded(daemon: Daemon, name: str) -> Any:
    return next(m for m in runner_models(daemon) if m.spec.name == name)


# --- options: validation and refusals -------------------------------------------------------


def test_options_name_the_field_and_the_allowed_values() -> None:
    with pytest.raises(InvalidArgument, match=r"quantize: must be one of fp8-dynamic, int8-dyn"):
        ModelOptions(quantize="int4")
    with pytest.raises(InvalidArgument, match="offload: must be one of model, sequential"):
        ModelOptions(offload="disk")
    with pytest.raises(InvalidArgument, match="cuda_graphs: needs compile"):
        ModelOptions(cuda_graphs=True)
    with pytest.raises(InvalidArgument, match="tiny_vae_decode: needs tiny_vae"):
        ModelOptions(tiny_vae_decode=True)
    adapter = LoraAdapter("a", "/x")
    with pytest.raises(InvalidArgument, match="fuse_qkv: cannot be combined with LoRA"):
        ModelOptions(fuse_qkv=True, loras=(adapter,))
    with pytest.raises(InvalidArgument, match="lora: scale of 'a' must be within"):
        ModelOptions(loras=(replace(adapter, scale=11.0),))
    # Automatic defaults: on CUDA channels_last + fuse_qkv + sdpa; on the CPU sdpa only.
    on_cuda = accel.resolve(ModelOptions(), "cuda")
    assert (on_cuda.channels_last, on_cuda.fuse_qkv, on_cuda.sdpa) == (True, True, True)
    on_cpu = accel.resolve(ModelOptions(), "cpu")
    assert (on_cpu.channels_last, on_cpu.fuse_qkv, on_cpu.sdpa) == (False, False, True)
    assert accel.resolve(ModelOptions(loras=(adapter,)), "cuda").fuse_qkv is False


def test_serve_flags_become_the_default_models_options(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.add_serve_arguments(parser)
    args = parser.parse_args(
        ["--model", "sd-turbo", "--compile", "--quantize", "fp8-dynamic", "--offload", "model"]
        + ["--tiny-vae", str(tmp_path), "--no-channels-last", "--vram-budget-gb", "1.5"]
    )
    config = cli.config_from_args(args)
    options = config.model_options["sd-turbo"]
    assert options.compile and options.quantize == "fp8-dynamic" and options.offload == "model"
    assert options.channels_last is False and options.fuse_qkv is None
    assert options.tiny_vae == str(tmp_path)
    assert config.vram_budget_bytes == int(1.5 * 1024**3) and config.memory_budget_bytes is None
    args = parser.parse_args(["--lora", "ink=C:/l/ink.st:0.5", "--lora", "wood=/l/wood"])
    options = cli.config_from_args(args).model_options["pixelkiln-textures"]  # the default model
    assert options.loras == (LoraAdapter("ink", "C:/l/ink.st", 0.5), LoraAdapter("wood", "/l/wood"))
    # serve's one default that differs from ModelOptions(): the runtime (auto, measured).
    defaults = cli.config_from_args(parser.parse_args([])).model_options
    assert defaults == {"pixelkiln-textures": ModelOptions(runtime="auto")}
    with pytest.raises(SystemExit, match="--quantize: must be one of fp8-dynamic, int8-dynamic"):
        cli.config_from_args(parser.parse_args(["--quantize", "int4"]))
    with pytest.raises(SystemExit, match="--cuda-graphs: needs compile"):
        cli.config_from_args(parser.parse_args(["--cuda-graphs"]))
    with pytest.raises(SystemExit, match="--memory-budget-gb: must be positive"):
        cli.config_from_args(parser.parse_args(["--memory-budget-gb", "0"]))


def test_cuda_only_options_refuse_cleanly_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    refusals = {
        "fp8-dynamic": "quantize: fp8-dynamic needs",
        "cuda_graphs": "cuda_graphs: needs a CUDA device",
        "offload": "offload: CPU offload needs a CUDA device",
    }
    for key, options in (
        ("fp8-dynamic", ModelOptions(quantize="fp8-dynamic")),
        ("cuda_graphs", ModelOptions(compile=True, cuda_graphs=True)),
        ("offload", ModelOptions(offload="model")),
    ):
        with pytest.raises(FailedPrecondition, match=refusals[key]):
            accel.check(options, "cpu")
    # Without torchao or peft installed, the option names what is missing.
    monkeypatch.setitem(sys.modules, "torchao", None)
    with pytest.raises(FailedPrecondition, match=r"quantize: int8-dynamic needs torchao"):
        accel.check(ModelOptions(quantize="int8-dynamic"), "cpu")
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(FailedPrecondition, match=r"lora: LoRA adapters need peft"):
        accel.check(ModelOptions(loras=(LoraAdapter("a", "/x"),)), "cpu")
    with pytest.raises(Exception, match="tiny_vae: no AutoencoderTiny folder"):
        accel.check(ModelOptions(tiny_vae="/nonexistent"), "cpu")


# --- options: applied on the CPU --------------------------------------------------------------


def test_channels_last_fuse_qkv_sdpa_match_the_plain_path() -> None:
    plain = load_tiny(sdpa=False)  # diffusers' classic attention processor
    fast = load_tiny(channels_last=True, fuse_qkv=True, sdpa=True)
    import torch

    unet = fast.pipe.unet
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    processors = {type(p).__name__ for p in unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}
    assert {type(p).__name__ for p in plain.pipe.unet.attn_processors.values()} == {"AttnProcessor"}
    assert np.abs(run(fast) - run(plain)).max() < 1e-4
    active = fast.active_options()
    assert (active["channels_last"], active["fuse_qkv"], active["sdpa"]) == ("true",) * 3
    assert active["compile"] == "false" and active["quantize"] == ""


def test_int8_dynamic_quantization_runs_on_the_cpu() -> None:
    pytest.importorskip("torchao")
    plain, quantized = load_tiny(), load_tiny(quantize="int8-dynamic")
    assert quantized.active_options()["quantize"].startswith("int8-dynamic (")
    # int8 weights: the measured size drops (the linear layers are most of the UNet).
    assert quantized.memory_bytes() < plain.memory_bytes()
    assert np.abs(run(quantized) - run(plain)).max() < 0.05


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compile_warms_up_at_load_and_matches(request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("torch.compile on the CPU takes 20-90 s here: run with -m slow")
    plain = load_tiny()
    started = time.perf_counter()
    compiled = load_tiny(compile=True)
    print(f"compile + warm-up at load: {time.perf_counter() - started:.1f} s")
    assert compiled.active_options()["compile"] == "default"
    assert np.abs(run(compiled) - run(plain)).max() < 1e-4


# --- tiny VAE: previews and live decode -------------------------------------------------------


def record_decoder(model: Any) -> list[np.ndarray]:
    """Every output of the tiny VAE's decoder as uint8 RGB, as the daemon converts it."""
    seen: list[np.ndarray] = []

    def hook(_module: Any, _args: Any, out: Any) -> None:
        rgb = ((out.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
        seen.append((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))

    model.tiny_vae.decoder.register_forward_hook(hook)
    return seen


def test_a_tiny_vae_of_another_latent_space_is_refused(tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    small = {"encoder_block_out_channels": (8,) * 4, "decoder_block_out_channels": (8,) * 4}
    AutoencoderTiny(latent_channels=16, **small).save_pretrained(tmp_path)  # a TAEF1 shape
    with pytest.raises(InvalidArgument, match="tiny_vae: has 16 latent channels; .* has 4"):
        load_tiny(tiny_vae=str(tmp_path))


async def test_previews_come_from_the_tiny_vae(fast: Daemon) -> None:
    async with AsyncClient(fast.address, timeout=120) as client:
        await client.load("fast")
        decoded = record_decoder(loaded(fast, "fast"))
        events = [
            e
            async for e in client.stream(
                "moss", model="fast", steps=2, seed=4, preview_every=1, preview_encoding="png",
                preview_max_side=64, **SIZE,
            )
        ]  # fmt: skip
        previews = [e for e in events if isinstance(e, Preview)]
        assert len(previews) == 2 and len(decoded) == 2
        for preview, rgb in zip(previews, decoded, strict=True):
            # A full-size decode (64x64 from an 8x8 latent), not the latent projection.
            assert rgb.shape == (1, 64, 64, 3)
            assert np.abs(decode(preview.images[0].data).astype(int) - rgb[0]).max() <= 1
        small = [
            e
            async for e in client.stream(
                "moss", model="fast", steps=1, seed=4, preview_every=1, preview_max_side=32, **SIZE
            )
            if isinstance(e, Preview)
        ]
        assert small[0].images[0].to_pil().size == (32, 32)
        # Interactive results still go through the full VAE.
        before = len(decoded)
        await client.generate("moss", model="fast", steps=1, seed=4, **SIZE)
        assert len(decoded) == before


async def test_live_frames_decode_with_the_tiny_vae(fast: Daemon) -> None:
    sketch = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    async with AsyncClient(fast.address, timeout=120) as client:
        await client.load("fast")
        decoded = record_decoder(loaded(fast, "fast"))
        async with client.live(
            model="fast", prompt="lava", strength=0.5, seed=2, steps=2, guidance_scale=0.0
        ) as session:
            await session.send(sketch)
            await session.close()
            frames = [frame async for frame in session]
    assert frames[-1].image is not None and decoded
    image = decode(frames[-1].image.data)
    assert np.abs(image.astype(int) - decoded[-1][0]).max() <= 1


# --- LoRA -------------------------------------------------------------------------------------


async def test_lora_scales_per_request_and_in_the_recipe(fast: Daemon) -> None:
    channel = grpc.aio.insecure_channel(fast.address)
    stub = gen_grpc.GeneratorStub(channel)

    async def generate(model: str, loras: dict[str, float] | None = None) -> Any:
        req = gen_pb.GenerateRequest(model=model, prompt="oak", steps=2, seed=5, **SIZE)
        req.loras.update(loras or {})
        events = [e async for e in stub.Generate(req, timeout=120)]
        return events[-1].result

    try:
        base = await generate("tiny-random")
        off = await generate("styled", {"detail": 0.0})
        on = await generate("styled", {"detail": 1.0})
        default = await generate("styled")
        pixels = [decode(r.images[0].image.data) for r in (base, off, on, default)]
        assert np.array_equal(pixels[0], pixels[1])  # scale 0 is the base model exactly
        assert np.abs(pixels[2].astype(int) - pixels[0]).max() > 0
        assert not np.array_equal(pixels[3], pixels[2])  # load scale 0.5
        recipes = [json.loads(r.recipe.json) for r in (off, on, default)]
        assert [r["request"]["loras"] for r in recipes] == [
            {"detail": 0.0},
            {"detail": 1.0},
            {"detail": 0.5},
        ]
        assert "loras" not in json.loads(base.recipe.json)["request"]
        # The recipe replays to the same bytes: request_from_dict -> protobuf -> Generate.
        again = recipe.request_from_dict(recipes[1]["request"])
        assert again.loras == (("detail", 1.0),)
        msg = convert.request_to_pb(again)
        replayed = [e async for e in stub.Generate(msg, timeout=120)][-1].result
        assert replayed.images[0].image.data == on.images[0].image.data
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await generate("styled", {"sketchy": 1.0})
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "loras: model 'styled' has no LoRA adapter 'sketchy' (loaded: detail)" in str(
            info.value.details()
        )
    finally:
        await channel.close()


def test_lora_cli_parsing() -> None:
    assert lora.parse_cli("a=/x/y.safetensors") == LoraAdapter("a", "/x/y.safetensors", 1.0)
    assert lora.parse_cli("a=C:/x:0.25") == LoraAdapter("a", "C:/x", 0.25)
    assert lora.parse_cli("a=C:/x") == LoraAdapter("a", "C:/x", 1.0)
    with pytest.raises(InvalidArgument, match="lora: wants NAME=PATH"):
        lora.parse_cli("nope")


# --- memory: budget, LRU, protections, unload -------------------------------------------------


def test_pick_victims_policy() -> None:
    resident = [Resident("default", 10, 1.0), Resident("a", 10, 2.0), Resident("b", 10, 3.0)]
    pick = pick_victims
    assert pick(resident, 10, None, set(), "default") == []  # unlimited
    assert pick(resident, 10, 40, set(), "default") == []  # fits
    assert pick(resident, 10, 30, set(), "default") == ["a"]  # LRU, the default last
    assert pick(resident, 10, 30, {"a"}, "default") == ["b"]  # never one in use
    assert pick(resident, 30, 30, set(), "default") == ["a", "b", "default"]
    assert pick(resident, 30, 30, {"a"}, "default") is None  # cannot fit
    assert default_vram_budget(80 * 1024**3) == 72 * 1024**3
    assert default_vram_budget(8 * 1024**3) == 6 * 1024**3


def weights_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*.safetensors"))


async def test_budget_unloads_the_least_recently_used(tiny_folder: Path) -> None:
    folder = str(tiny_folder)
    budget = int(2.5 * weights_bytes(tiny_folder))  # two tiny models fit, three do not
    async with (
        running_daemon(
            default_model="a",
            extra_models={"a": folder, "b": folder, "c": folder},
            memory_budget_bytes=budget,
            warm_up=False,
        ) as d,
        AsyncClient(d.address, timeout=120) as client,
    ):
        for name in ("a", "b"):
            await client.load(name)
        status = await client.status()
        assert [m.name for m in status.models] == ["a", "b"]
        assert status.memory_budget_bytes == budget
        for m in status.models:
            assert m.device == "cpu" and m.dtype == "fp32"
            assert 0.9 < m.memory_bytes / weights_bytes(tiny_folder) < 1.1
            assert m.last_used_unix_ms > 0 and m.options["sdpa"] == "true"
        assert status.models[0].last_used_unix_ms <= status.models[1].last_used_unix_ms
        # "a" is the least recently used but the default: "b" makes room for "c".
        await client.load("c")
        assert [m.name for m in (await client.status()).models] == ["a", "c"]
        # Unload frees for real: the weights' tensors are gone, and the response says how much.
        model = loaded(d, "c")
        size, ref = model.memory_bytes(), weakref.ref(model.pipe.unet.conv_in.weight)
        del model
        result = await d.engine.unload_model("c")
        gc.collect()
        assert ref() is None
        assert result.unloaded and result.freed_bytes == size
        assert convert.unload_to_pb(result).freed_bytes == size
        assert not (await d.engine.unload_model("c")).unloaded


def test_in_use_models_stay_and_the_default_goes_last(tiny_folder: Path) -> None:
    folder = str(tiny_folder)
    in_use: set[str] = set()
    registry = ModelRegistry(
        LoadOptions(home=home_dir()),
        {"a": folder, "b": folder, "c": folder},
        default_model="a",
        memory_budget_bytes=int(2.5 * weights_bytes(tiny_folder)),
        in_use=lambda: in_use,
    )
    registry.get(registry.spec("a"))
    registry.get(registry.spec("b"))
    in_use.add("b")  # a running job holds "b": only the default can make room
    registry.get(registry.spec("c"))
    assert [m.spec.name for m in registry.loaded()] == ["b", "c"]
    in_use.update({"c"})
    with pytest.raises(ResourceExhausted, match=r"'a' does not fit .*--memory-budget-gb.*b, c"):
        registry.get(registry.spec("a"))
    assert [m.spec.name for m in registry.loaded()] == ["b", "c"]
    small = ModelRegistry(LoadOptions(home=home_dir()), {"a": folder}, memory_budget_bytes=1000)
    with pytest.raises(ResourceExhausted, match="does not fit the memory budget"):
        small.get(small.spec("a"))
    assert small.loaded() == []


async def test_status_and_unload_over_grpc(fast: Daemon) -> None:
    async with AsyncClient(fast.address, timeout=120) as client:
        await client.load("styled")
        status = await client.status()
        styled = next(m for m in status.models if m.name == "styled")
        assert styled.options["loras"] == "detail=0.5" and styled.options["fuse_qkv"] == "false"
        assert styled.memory_bytes > 0
        assert await client.unload("styled")
        assert "styled" not in [m.name for m in (await client.status()).models]
    registry = ModelRegistry(LoadOptions(home=home_dir()))
    onnx = replace(TINY, name="o", backend="onnx", options=ModelOptions(compile=True))
    with pytest.raises(InvalidArgument, match="options: speed/memory options apply to diffusers"):
        registry.get(onnx)


def test_unknown_lora_in_a_request_names_the_field() -> None:
    adapters = (LoraAdapter("detail", "/x", 0.5),)
    assert lora.resolve_scales((), adapters, "m") == (("detail", 0.5),)
    assert lora.resolve_scales((("detail", 2.0),), adapters, "m") == (("detail", 2.0),)
    with pytest.raises(InvalidArgument, match="loras: scale of 'detail' must be within"):
        lora.resolve_scales((("detail", float("nan")),), adapters, "m")
    with pytest.raises(InvalidArgument, match=r"loras: model 'm' has no LoRA adapter 'x'"):
        lora.resolve_scales((("x", 1.0),), (), "m")


def test_recipe_round_trips_loras() -> None:
    request = GenerationRequest(prompt="p", loras=(("a", 0.5), ("b", 1.0)), seed=1)
    made = recipe.make_recipe(request, "rev", "cpu", "fp32")
    data = json.loads(recipe.to_json(made))
    assert data["request"]["loras"] == {"a": 0.5, "b": 1.0}
    assert recipe.from_dict(data).request.loras == request.loras
    plain = json.loads(recipe.to_json(recipe.make_recipe(replace(request, loras=()), "r", "", "")))
    assert "loras" not in plain["request"]
    assert recipe.from_dict(data).request.preview == PreviewOptions()


def test_the_cpu_memory_budget_is_on_by_default() -> None:
    from pixelkiln_server.engine.memory import default_cpu_budget, physical_memory_bytes

    total = physical_memory_bytes()
    assert total is not None and total > 2**30  # read on this OS
    assert default_cpu_budget(total) == total // 2
    assert default_cpu_budget(total, runners=2) == total // 4
    assert default_cpu_budget(None) is None


async def test_a_daemon_on_the_cpu_reports_its_default_budget(aclient: AsyncClient) -> None:
    from pixelkiln_server.engine.memory import default_cpu_budget, physical_memory_bytes

    status = await aclient.status()
    assert status.memory_budget_bytes == default_cpu_budget(physical_memory_bytes())
