"""The texture model's tooling end to end, at smoke size: the training script writes a standard
diffusers folder that loads offline and generates, and the evaluation script runs on it.

Training and evaluation run in child processes: the training script switches torch to
deterministic mode and a fixed thread count, which must not leak into the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "tools" / "train_texture_model.py"
EVAL = ROOT / "benchmarks" / "eval_texture_model.py"
# Training and evaluating in child processes takes under a minute on a quiet machine, but CI
# machines are shared: room for slow days.
pytestmark = pytest.mark.timeout(360)


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("texture-model") / "pixelkiln-textures-smoke"
    proc = run([str(TRAIN), "--smoke", "--no-grid", "--out", str(out)], timeout=300)
    assert "samples/s" in proc.stdout
    return out


def test_smoke_training_writes_a_diffusers_folder(smoke_model: Path) -> None:
    from safetensors.torch import load_file

    index = json.loads((smoke_model / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (smoke_model / part).is_dir(), part
    assert not list(smoke_model.rglob("*.bin"))  # safetensors only
    weights = load_file(smoke_model / "unet" / "diffusion_pytorch_model.safetensors")
    assert {str(t.dtype) for t in weights.values()} == {"torch.float16"}
    meta = json.loads((smoke_model / "pixelkiln.json").read_text())
    assert meta["padding"] == "circular" and meta["native_size"] == 64
    assert meta["default_guidance"] == 4.0
    assert set(meta["training"]) >= {"vae", "text", "unet"}
    assert len(meta["preview_factors"]["matrix"]) == meta["recipe"]["vae_latent_channels"]
    total = sum(p.stat().st_size for p in smoke_model.rglob("*") if p.is_file())
    assert total < 30e6
    # Written atomically: nothing is left beside the folder.
    assert [p.name for p in smoke_model.parent.iterdir()] == [smoke_model.name]


def test_smoke_model_loads_offline_and_generates(smoke_model: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(smoke_model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    tokens = pipe.tokenizer("gold coin sprite").input_ids
    assert len(tokens) == 5  # bos, three whole-word tokens, eos
    out = pipe(
        "red brick wall",
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=4.0,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    image = out.images[0]
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()


def test_eval_script_runs_on_the_smoke_model(smoke_model: Path, tmp_path: Path) -> None:
    stem = tmp_path / "eval"
    proc = run(
        [str(EVAL), "--model", str(smoke_model), "--quick", "--judge-cache", "none"]
        + ["--out", str(stem)],
        timeout=300,
    )
    assert (
        "pattern accuracy" in proc.stdout and "256x256" in proc.stdout and "512x512" in proc.stdout
    )
    report = json.loads(stem.with_suffix(".json").read_text())
    metrics = report["metrics"]
    for key in (
        "judge_accuracy_through_vae",
        "pattern_accuracy",
        "colour_accuracy",
        "sprite_coverage_mean",
        "seconds_256_8_steps",
        "pattern_accuracy_512_crops",
        "seconds_512_8_steps",
    ):
        assert key in metrics
    assert report["images"] >= 10
    assert stem.with_suffix(".png").is_file()


def test_continuing_a_model_trains_its_unet_further(smoke_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "continued"
    run(
        [str(TRAIN), "--continue-from", str(smoke_model), "--unet-steps", "2", "--no-grid"]
        + ["--out", str(out)],
        timeout=300,
    )
    before = json.loads((smoke_model / "pixelkiln.json").read_text())
    after = json.loads((out / "pixelkiln.json").read_text())
    # The first run's record is kept, the continuation is added, the preview map carried over.
    assert after["training"] == before["training"] and after["recipe"] == before["recipe"]
    assert [c["steps"] for c in after["continued"]] == [2]
    assert after["preview_factors"] == before["preview_factors"]
    assert after["train_seconds"] > before["train_seconds"]
    unet = "unet/diffusion_pytorch_model.safetensors"
    vae = "vae/diffusion_pytorch_model.safetensors"
    old, new = load_file(smoke_model / unet), load_file(out / unet)
    assert any(not (old[k] == new[k]).all() for k in old)  # the UNet moved
    assert (smoke_model / vae).read_bytes() == (out / vae).read_bytes()  # the VAE did not


def test_unet_attention_levels_follow_the_recipe() -> None:
    import dataclasses

    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    from texmodel.recipe import Recipe
    from texmodel.unet import build_unet

    recipe = Recipe.smoke()
    unet = build_unet(recipe)  # the recipe: no attention at the full latent resolution
    assert list(unet.config.down_block_types) == ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 2
    assert list(unet.config.up_block_types) == ["CrossAttnUpBlock2D"] * 2 + ["UpBlock2D"]
    everywhere = build_unet(dataclasses.replace(recipe, unet_plain_levels=0))
    assert set(everywhere.config.down_block_types) == {"CrossAttnDownBlock2D"}
    assert set(everywhere.config.up_block_types) == {"CrossAttnUpBlock2D"}
    assert sum(p.numel() for p in everywhere.parameters()) > sum(
        p.numel() for p in unet.parameters()
    )


def test_shipped_model_records_the_current_recipe() -> None:
    """``--out shipped`` with no flags must be what made the shipped weights: a recipe change
    without a retrained model (or a recorded field missing) shows up here."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    from texmodel.recipe import Recipe

    from pixelkiln_server.catalogue import SHIPPED_FOLDER

    meta = json.loads((SHIPPED_FOLDER / "pixelkiln.json").read_text())
    assert meta["recipe"] == json.loads(json.dumps(Recipe.full().to_dict()))
    assert meta["training"]["cut_short"] is False
    assert meta.get("vae_from") is None and "continued" not in meta


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--unet-plain-levels", "4", "--unet-plain-levels must be 0..3 (the UNet's levels), got 4"),
        ("--unet-lr", "0", "--unet-lr must be a number > 0, got 0.0"),
        ("--unet-lr", "nan", "--unet-lr must be a number > 0, got nan"),
        ("--unet-steps", "-1", "--unet-steps must be >= 0, got -1"),
        ("--threads", "0", "--threads must be >= 1, got 0"),
        ("--pool", "3", "--pool must be >= 8 (the largest batch), got 3"),
        ("--continue-from", "shipped", "--continue-from needs --unet-steps >= 1"),
    ],
)
def test_a_bad_recipe_flag_is_refused_before_training(
    tmp_path: Path, flag: str, value: str, said: str
) -> None:
    proc = subprocess.run(
        [sys.executable, str(TRAIN), "--smoke", flag, value, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert said in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())
