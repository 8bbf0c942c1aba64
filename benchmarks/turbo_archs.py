"""The turbo models' full-size architectures with random weights (the real configs; latency
does not depend on the weights), their tiny stand-ins for the CPU smoke run, and TAESD-shaped
tiny autoencoders. Used by ``gpu_turbo.py``; nothing here downloads anything."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# CLIP text encoders: hidden, layers, heads, activation, projection.
CLIP: dict[str, tuple[int, int, int, str, int]] = {
    "L": (768, 12, 12, "quick_gelu", 768),
    "H": (1024, 23, 16, "gelu", 512),
    "bigG": (1280, 32, 20, "gelu", 1280),
}
SDXL_UNET: dict[str, Any] = dict(
    sample_size=64, block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)  # fmt: skip
FLUX: dict[str, Any] = dict(
    in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
    guidance_embeds=False, axes_dims_rope=(16, 56, 56),
)  # fmt: skip
T5_XXL: dict[str, Any] = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
)  # fmt: skip
QWEN3_4B: dict[str, Any] = dict(
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
    num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
)  # fmt: skip
FLUX_VAE: dict[str, Any] = dict(scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                use_post_quant_conv=False)  # fmt: skip


@contextlib.contextmanager
def host() -> Iterator[None]:
    """Schedulers and tokenizers: on the CPU in float32, whatever the models are built in."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with torch.device("cpu"):
            yield
    finally:
        torch.set_default_dtype(previous)


def _clip(kind: str, tokenizer: Any, projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    hidden, layers, heads, act, proj = CLIP[kind]
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 4,
        num_hidden_layers=layers, num_attention_heads=heads, hidden_act=act, projection_dim=proj,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _kl_vae(latent_channels: int, **config: Any) -> Any:
    from diffusers import AutoencoderKL

    blocks = {"down_block_types": ("DownEncoderBlock2D",) * 4}
    blocks["up_block_types"] = ("UpDecoderBlock2D",) * 4
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                         latent_channels=latent_channels, **blocks, **config)  # fmt: skip


def build_full(model: str) -> Any:
    """The full-size architecture of ``model`` with random weights (the real configs)."""
    import diffusers as d
    from transformers import Qwen3Config, Qwen3Model, T5Config, T5EncoderModel

    from pixelkiln_server.backends.tiny_families import build_qwen_tokenizer, build_t5_tokenizer
    from pixelkiln_server.backends.tiny_random import build_tiny_tokenizer

    with host():
        tok = build_tiny_tokenizer()
        euler = d.EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                         beta_end=0.012, steps_offset=1)  # fmt: skip
        flow = [d.FlowMatchEulerDiscreteScheduler(shift=s, use_dynamic_shifting=False)
                for s in (1.0, 3.0)]  # fmt: skip
    if model == "sd-turbo":  # the SD 2.1 UNet at 512 (sample size 64)
        unet = d.UNet2DConditionModel(sample_size=64, cross_attention_dim=1024,
                                      attention_head_dim=(5, 10, 20, 20),
                                      use_linear_projection=True)  # fmt: skip
        vae = _kl_vae(4, scaling_factor=0.18215)
        return d.StableDiffusionPipeline(vae, _clip("H", tok), tok, unet, euler, None, None, None,
                                         requires_safety_checker=False)  # fmt: skip
    if model == "sdxl-turbo":
        return d.StableDiffusionXLPipeline(
            _kl_vae(4, scaling_factor=0.13025), _clip("L", tok), _clip("bigG", tok, True), tok,
            build_tiny_tokenizer(), d.UNet2DConditionModel(**SDXL_UNET), euler,
        )  # fmt: skip
    if model == "flux.1-schnell":
        return d.FluxPipeline(
            flow[0], _kl_vae(16, **FLUX_VAE), _clip("L", tok), tok,
            T5EncoderModel(T5Config(**T5_XXL)), build_t5_tokenizer(),
            d.FluxTransformer2DModel(**FLUX),
        )  # fmt: skip
    return d.ZImagePipeline(
        flow[1], _kl_vae(16, **FLUX_VAE), Qwen3Model(Qwen3Config(**QWEN3_4B)),
        build_qwen_tokenizer(), d.ZImageTransformer2DModel(),  # its defaults: the 6B config
    )  # fmt: skip


def build_tiny(model: str) -> Any:
    from pixelkiln_server.backends.tiny_families import build_tiny_family
    from pixelkiln_server.backends.tiny_random import build_tiny_sd_pipeline

    if model == "sd-turbo":
        return build_tiny_sd_pipeline()
    return build_tiny_family({"sdxl-turbo": "sdxl", "flux.1-schnell": "flux"}.get(model, "z-image"))


def tiny_autoencoder(latent_channels: int, smoke: bool) -> Any:
    """TAESD's shape (TAEF1's with 16 channels); a smaller one for the CPU smoke run."""
    from diffusers import AutoencoderTiny

    if not smoke:
        return AutoencoderTiny(latent_channels=latent_channels)
    small = dict(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4)
    blocks = dict(num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    return AutoencoderTiny(latent_channels=latent_channels, **small, **blocks)
