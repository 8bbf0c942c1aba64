"""The tiny-random model: built offline from a seed, cached atomically, deterministic."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
np = pytest.importorskip("numpy")

from pixelkiln_server.backends import ldm_checkpoint, tiny_random  # noqa: E402

SERVER_DIR = Path(__file__).resolve().parents[1] / "server"


def _weights(pipe: Any) -> dict[str, Any]:
    return {
        f"{name}.{key}": value
        for name in ("unet", "vae", "text_encoder")
        for key, value in getattr(pipe, name).state_dict().items()
    }


def _same_weights(a: Any, b: Any) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _generate(pipe: Any, seed: int) -> Any:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a mossy stone wall",
        height=64,
        width=64,
        num_inference_steps=1,
        guidance_scale=0.0,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.images[0]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF offline mode, and any attempt to open a network connection fails the test."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def no_network(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network access to {address!r} during an offline load")

    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.fixture(scope="module")
def pipe() -> Any:
    return tiny_random.build_tiny_sd_pipeline(seed=0)


def test_module_imports_without_torch() -> None:
    code = (
        "import sys, pixelkiln_server.backends.tiny_random as t; "
        "assert t.TINY_RANDOM_VERSION; "
        "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), sys.modules.keys()"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={"PYTHONPATH": str(SERVER_DIR)},
        timeout=60,
    )


def test_build_is_deterministic(pipe: Any) -> None:
    again = tiny_random.build_tiny_sd_pipeline(seed=0)
    assert _same_weights(pipe, again)
    assert not _same_weights(pipe, tiny_random.build_tiny_sd_pipeline(seed=1))


def test_build_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_random.build_tiny_sd_pipeline(seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_architecture(pipe: Any) -> None:
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.in_channels == 4
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size == 32
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer) == 519
    assert pipe.tokenizer.model_max_length == 77
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.safety_checker is None


@pytest.mark.parametrize("text", ["the cat", "", "Ünïcödé 日本語 🎮\t\n\x00 ﷽", "x" * 1000])
def test_tokenizer_encodes_any_text(pipe: Any, text: str) -> None:
    tok = pipe.tokenizer
    ids = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77
    assert ids[0] == tok.bos_token_id
    assert all(0 <= i < len(tok) for i in ids)


def test_ensure_builds_once_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    build = tiny_random.build_tiny_sd_pipeline

    def counting_build(seed: int = 0) -> Any:
        calls.append(seed)
        return build(seed)

    monkeypatch.setattr(tiny_random, "build_tiny_sd_pipeline", counting_build)
    first = tiny_random.ensure_tiny_random(tmp_path, seed=0)
    assert first == tmp_path / f"tiny-random-v{tiny_random.TINY_RANDOM_VERSION}-seed0"
    assert (first / "model_index.json").is_file()
    assert list(first.rglob("*.safetensors"))
    assert tiny_random.ensure_tiny_random(tmp_path, seed=0) == first
    assert calls == [0]
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp folder left


def test_ensure_default_dir_follows_pixelkiln_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXELKILN_HOME", str(tmp_path))
    assert tiny_random.default_cache_dir() == tmp_path / "models"


def test_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(seed: int = 0) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(tiny_random, "build_tiny_sd_pipeline", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        tiny_random.ensure_tiny_random(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_builder_keeps_the_first_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipe: Any
) -> None:
    target = tmp_path / tiny_random.folder_name(0)

    def slow_build(seed: int = 0) -> Any:
        # Another process finishes first while this one is still building.
        target.mkdir()
        (target / "model_index.json").write_text("{}")
        return pipe

    monkeypatch.setattr(tiny_random, "build_tiny_sd_pipeline", slow_build)
    assert tiny_random.ensure_tiny_random(tmp_path) == target
    assert [p.name for p in target.iterdir()] == ["model_index.json"]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_saved_folder_loads_offline_and_generates(tmp_path: Path, pipe: Any, offline: None) -> None:
    from diffusers import StableDiffusionPipeline

    folder = tiny_random.ensure_tiny_random(tmp_path, seed=0)
    loaded = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    assert _same_weights(pipe, loaded)

    image = _generate(loaded, seed=7)
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()
    assert np.array_equal(image, _generate(loaded, seed=7))
    assert np.array_equal(image, _generate(pipe, seed=7))
    assert not np.array_equal(image, _generate(loaded, seed=8))


def test_single_file_checkpoint_loads_offline(tmp_path: Path, pipe: Any, offline: None) -> None:
    from pixelkiln_server.backends.base import LoadOptions
    from pixelkiln_server.backends.diffusers_load import WEIGHT_ALIGNMENT, load_pipeline
    from pixelkiln_server.catalogue import ModelSpec

    folder = tiny_random.ensure_tiny_random(tmp_path / "models", seed=0)
    configs = tmp_path / "configs"
    shutil.copytree(folder, configs, ignore=shutil.ignore_patterns("*.safetensors"))
    checkpoint = ldm_checkpoint.save_single_file_checkpoint(pipe, tmp_path / "tiny.safetensors")
    assert any(k.startswith("model.diffusion_model.") for k in ldm_checkpoint.ldm_state_dict(pipe))

    spec = ModelSpec(name="tiny-file", family="sd", source=str(checkpoint), config=str(configs))
    loaded = load_pipeline(spec, torch.float32, LoadOptions(device="cpu", offline=True))
    assert _same_weights(pipe, loaded)
    assert all(t.data_ptr() % WEIGHT_ALIGNMENT == 0 for t in _weights(loaded).values())
    # Bit for bit: the same weights give the same pixels whichever way they were loaded.
    assert np.array_equal(_generate(loaded, seed=3), _generate(pipe, seed=3))


def test_misaligned_weights_are_copied_to_aligned_memory() -> None:
    """The cause of the single-file difference: MKL's sgemm sums in another order for a weight
    that is not 16-byte aligned, and diffusers' single-file load keeps the tensors that
    safetensors returns at 4-byte alignment. ``align_weights`` copies them."""
    from types import SimpleNamespace

    from pixelkiln_server.backends.diffusers_load import WEIGHT_ALIGNMENT, align_weights

    gen = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(32, 128)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(128, 32, generator=gen))
    x = torch.randn(1, 32, generator=gen)
    expected = linear(x).detach()
    buffer = torch.empty(128 * 32 + 1)
    shifted = buffer[1:].view(128, 32)  # 4 bytes past an aligned address
    shifted.copy_(linear.weight.detach())
    linear.weight.data = shifted
    assert linear.weight.data_ptr() % WEIGHT_ALIGNMENT == 4

    assert align_weights(SimpleNamespace(components={"unet": linear, "name": "x"})) == 1
    assert linear.weight.data_ptr() % WEIGHT_ALIGNMENT == 0
    assert torch.equal(linear(x).detach(), expected)
