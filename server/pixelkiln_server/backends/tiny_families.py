"""Tiny random-weight pipelines of the other families: ``tiny-sdxl``, ``tiny-flux``,
``tiny-z-image``, ``tiny-flux2-klein``. Like ``tiny-random``, each is built in code from a
fixed seed (tokenizers included, nothing is downloaded), saved once to a cache folder and
loaded from there like any diffusers model folder, so CI runs every family's real code path
on the CPU::

    folder = ensure_tiny_family("flux")  # $PIXELKILN_HOME/models/tiny-flux-v1-seed0
    pipe = FluxPipeline.from_pretrained(folder, local_files_only=True)

- SDXL: two CLIP text encoders (the second a ``CLIPTextModelWithProjection``), a ``text_time``
  UNet with cross-attention dim 64 (= 32 + 32, the two encoders' hidden states side by side).
- FLUX: ``FluxTransformer2DModel`` (one double and one single block), CLIP + T5 encoders, a KL
  VAE with 16 latent channels and a scale factor of 8, flow-matching Euler (schnell's shift 1).
- Z-Image: ``ZImageTransformer2DModel``, a Qwen3 text encoder with a byte-level BPE tokenizer
  and a chat template, the same 16-channel VAE, flow-matching Euler with shift 3.

The T5 tokenizer is a Unigram model over printable ASCII, built with ``tokenizers``; the Qwen
tokenizer reuses the CLIP tokenizer's byte alphabet. Both save as ``tokenizer.json`` and reload
offline through ``from_pretrained``. Both constructors (a vocab in memory) are transformers
5's tokenizers-backed classes; transformers 4's slow T5Tokenizer wants a SentencePiece file.
torch, diffusers and transformers are imported inside the functions: importing this module
costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..catalogue import ModelSpec
from .base import LoadedModel, LoadOptions
from .tiny_random import (
    build_tiny_tokenizer,
    bytes_to_unicode,
    default_cache_dir,
    save_pipeline_atomically,
)

# Part of each cache folder's name; bump when an architecture or the weight draw changes.
TINY_FAMILIES_VERSION = "1"
FAMILIES = ("sdxl", "flux", "z-image", "flux2")
# The text encoders' sequence lengths (the real ones: 77 CLIP, 256/512 T5, 512 Qwen).
T5_MAX_LENGTH = 512
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_QWEN_MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"))


def folder_name(family: str, seed: int = 0) -> str:
    return f"tiny-{family}-v{TINY_FAMILIES_VERSION}-seed{seed}"


def build_t5_tokenizer() -> Any:
    """A T5 (Unigram, SentencePiece-style) tokenizer over printable ASCII, 194 tokens; offline.

    ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2 as in T5; every ASCII character alone and with the
    word-start marker, so any ASCII text encodes (other characters map to ``<unk>``)."""
    from transformers import T5Tokenizer

    chars = [chr(c) for c in range(32, 127)]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -3.0) for c in chars] + [("▁" + c, -2.5) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def build_qwen_tokenizer() -> Any:
    """A byte-level BPE tokenizer shaped like Qwen's (``<|im_start|>`` chat template,
    ``<|endoftext|>`` padding), 264 tokens; offline."""
    from transformers import Qwen2Tokenizer

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + ["".join(m) for m in _QWEN_MERGES] + list(_QWEN_SPECIALS)
    vocab = {tok: i for i, tok in enumerate(tokens)}
    merges: Any = list(_QWEN_MERGES)  # tuples: the tokenizers backend refuses "a b" strings
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIALS[1:])})
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    tokenizer.model_max_length = 32768
    return tokenizer


def _clip_text(tokenizer: Any, seed: int, with_projection: bool = False) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _kl_vae(seed: int, latent_channels: int, **config: Any) -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=64,
        **config,
    )


def _flux_vae(seed: int) -> Any:
    """FLUX's autoencoder shape (16 channels, no quant convs, scale + shift), shrunk."""
    return _kl_vae(
        seed,
        16,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def build_tiny_sdxl(seed: int = 0) -> Any:
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer = build_tiny_tokenizer()
    tokenizer_2 = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + 32,
            cross_attention_dim=64,
            norm_num_groups=32,
        )
        vae = _kl_vae(seed, 4, scaling_factor=0.13025, force_upcast=False)
        text_encoder = _clip_text(tokenizer, seed)
        text_encoder_2 = _clip_text(tokenizer_2, seed + 1, with_projection=True)
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )


def build_tiny_flux(seed: int = 0) -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = build_tiny_tokenizer()
    tokenizer_2 = build_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=False,
            axes_dims_rope=(4, 6, 6),
        )
        text_encoder = _clip_text(tokenizer, seed)
        torch.manual_seed(seed)
        text_encoder_2 = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer_2),
                d_model=32,
                d_kv=8,
                d_ff=37,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                feed_forward_proj="gated-gelu",
                pad_token_id=0,
                eos_token_id=1,
            )
        )
        vae = _flux_vae(seed)
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def build_tiny_z_image(seed: int = 0) -> Any:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = build_qwen_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = ZImageTransformer2DModel(
            all_patch_size=(2,),
            all_f_patch_size=(1,),
            in_channels=16,
            dim=32,
            n_layers=2,
            n_refiner_layers=1,
            n_heads=2,
            n_kv_heads=2,
            norm_eps=1e-5,
            qk_norm=True,
            cap_feat_dim=16,
            rope_theta=256.0,
            t_scale=1000.0,
            axes_dims=[8, 4, 4],
            axes_lens=[256, 32, 32],
        )
        torch.manual_seed(seed)
        text_encoder = Qwen3Model(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                head_dim=8,
                max_position_embeddings=1024,
                pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            )
        )
        vae = _flux_vae(seed)
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False
    )
    return ZImagePipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


def build_tiny_flux2_klein(seed: int = 0) -> Any:
    """FLUX.2 [klein]'s shape, shrunk: ``Flux2Transformer2DModel`` (one double, one single
    block, 128 = 32 x 2 x 2 packed latent channels, no guidance embedding: distilled), a Qwen3
    causal LM of 27 layers (the pipeline stacks hidden layers 9, 18 and 27, so the joint
    attention width is 3 x 16), the 32-channel ``AutoencoderKLFlux2`` with its batch-norm
    latent statistics, flow matching with dynamic shifting as in the real repo."""
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_qwen_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = Flux2Transformer2DModel(
            patch_size=1,
            in_channels=128,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=48,
            timestep_guidance_channels=32,
            axes_dims_rope=(4, 4, 4, 4),
            guidance_embeds=False,
        )
        torch.manual_seed(seed)
        text_encoder = Qwen3ForCausalLM(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=27,
                num_attention_heads=2,
                num_key_value_heads=2,
                head_dim=8,
                max_position_embeddings=1024,
                pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            )
        )
        torch.manual_seed(seed)
        vae = AutoencoderKLFlux2(
            block_out_channels=(8, 16, 16, 16),
            layers_per_block=1,
            latent_channels=32,
            norm_num_groups=8,
            sample_size=64,
            mid_block_add_attention=False,
        )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return Flux2KleinPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=True,
    )


BUILDERS: dict[str, Callable[[int], Any]] = {
    "sdxl": build_tiny_sdxl,
    "flux": build_tiny_flux,
    "z-image": build_tiny_z_image,
    "flux2": build_tiny_flux2_klein,
}


def build_tiny_family(family: str, seed: int = 0) -> Any:
    """Build one family's tiny pipeline in memory, weights drawn from ``seed``, eval mode."""
    pipe = BUILDERS[family](seed)
    for component in pipe.components.values():
        if hasattr(component, "eval"):
            component.eval()
    return pipe


def ensure_tiny_family(family: str, cache_dir: Path | None = None, seed: int = 0) -> Path:
    """The saved folder of one family's tiny pipeline, built on first use; atomic like
    :func:`~pixelkiln_server.backends.tiny_random.ensure_tiny_random`."""
    if family not in BUILDERS:
        raise ValueError(f"no tiny pipeline for family {family!r}; known: {', '.join(FAMILIES)}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / folder_name(family, seed)
    return save_pipeline_atomically(target, lambda: build_tiny_family(family, seed))


class _TinyFamilyBackend:
    """Builds the family's folder on first use, then loads it through the diffusers backend."""

    family = ""
    name = ""

    def load(self, spec: ModelSpec, options: LoadOptions) -> LoadedModel:
        from .diffusers_backend import DiffusersBackend

        folder = ensure_tiny_family(self.family, Path(options.home) / "models")
        return DiffusersBackend().load(replace(spec, source=str(folder)), options)


class TinySDXLBackend(_TinyFamilyBackend):
    family = "sdxl"
    name = "tiny-sdxl"


class TinyFluxBackend(_TinyFamilyBackend):
    family = "flux"
    name = "tiny-flux"


class TinyZImageBackend(_TinyFamilyBackend):
    family = "z-image"
    name = "tiny-z-image"


class TinyFlux2KleinBackend(_TinyFamilyBackend):
    family = "flux2"
    name = "tiny-flux2-klein"
