"""Write an SD 1.x diffusers pipeline as one ``.safetensors`` file in the original LDM layout.

The format of checkpoints shared on model sites; diffusers ships only the opposite direction.
Used to test the single-file loading path offline on tiny-random (and useful to export).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_UNET_PREFIX = "model.diffusion_model."
_VAE_PREFIX = "first_stage_model."
_CLIP_PREFIX = "cond_stage_model.transformer."

_UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_ATTN = (
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
)


def _unet_key_to_ldm(key: str, layers_per_block: int, up_with_attn: set[int]) -> str:
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    module, _, param = key.rpartition(".")
    if module in fixed:
        return f"{fixed[module]}.{param}"
    parts = key.split(".")

    def resnet(rest: list[str]) -> str:
        sub = ".".join(rest)
        for new, old in _UNET_RESNET:
            if sub.startswith(new + "."):
                return old + sub[len(new) :]
        raise ValueError(f"unknown UNet resnet key {key!r}")

    if parts[0] == "down_blocks":
        block = int(parts[1])
        base = 1 + block * (layers_per_block + 1)
        if parts[2] == "resnets":
            return f"input_blocks.{base + int(parts[3])}.0.{resnet(parts[4:])}"
        if parts[2] == "attentions":
            return f"input_blocks.{base + int(parts[3])}.1.{'.'.join(parts[4:])}"
        if parts[2] == "downsamplers":
            return f"input_blocks.{base + layers_per_block}.0.op.{parts[-1]}"
    if parts[0] == "mid_block":
        if parts[1] == "resnets":
            return f"middle_block.{2 * int(parts[2])}.{resnet(parts[3:])}"
        if parts[1] == "attentions":
            return f"middle_block.1.{'.'.join(parts[3:])}"
    if parts[0] == "up_blocks":
        block = int(parts[1])
        base = block * (layers_per_block + 1)
        if parts[2] == "resnets":
            return f"output_blocks.{base + int(parts[3])}.0.{resnet(parts[4:])}"
        if parts[2] == "attentions":
            return f"output_blocks.{base + int(parts[3])}.1.{'.'.join(parts[4:])}"
        if parts[2] == "upsamplers":
            # After the last resnet, and after its attention when the block has one.
            slot = 2 if block in up_with_attn else 1
            return f"output_blocks.{base + layers_per_block}.{slot}.conv.{parts[-1]}"
    raise ValueError(f"no LDM name for UNet key {key!r}")


def _unet_to_ldm(unet: Any) -> dict[str, torch.Tensor]:
    cfg = unet.config
    if not isinstance(cfg.layers_per_block, int):
        raise ValueError("only an int layers_per_block has an LDM layout")
    state = unet.state_dict()
    up_with_attn = {
        int(k.split(".")[1]) for k in state if k.startswith("up_blocks.") and ".attentions." in k
    }
    return {
        _UNET_PREFIX + _unet_key_to_ldm(key, cfg.layers_per_block, up_with_attn): value
        for key, value in state.items()
    }


def _vae_key_to_ldm(key: str, n_blocks: int) -> tuple[str, bool]:
    """LDM name of a VAE key, and whether the weight is a 1x1 conv there (attention)."""
    renames = {
        "encoder.conv_norm_out": "encoder.norm_out",
        "decoder.conv_norm_out": "decoder.norm_out",
    }
    module, _, param = key.rpartition(".")
    if module in renames:
        return f"{renames[module]}.{param}", False
    parts = key.split(".")
    if parts[0] in ("encoder", "decoder") and len(parts) > 2:
        side = parts[0]
        if parts[1] in ("down_blocks", "up_blocks"):
            block = int(parts[2])
            name = "down" if side == "encoder" else "up"
            # The decoder's up blocks are numbered from the lowest resolution in diffusers and
            # from the highest in LDM.
            ldm_block = block if side == "encoder" else n_blocks - 1 - block
            if parts[3] == "resnets":
                sub = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
                return f"{side}.{name}.{ldm_block}.block.{parts[4]}.{sub}", False
            if parts[3] in ("downsamplers", "upsamplers"):
                kind = "downsample" if side == "encoder" else "upsample"
                return f"{side}.{name}.{ldm_block}.{kind}.conv.{parts[-1]}", False
        if parts[1] == "mid_block":
            if parts[2] == "resnets":
                sub = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
                return f"{side}.mid.block_{int(parts[3]) + 1}.{sub}", False
            if parts[2] == "attentions":
                sub = ".".join(parts[4:])
                for new, old in _VAE_ATTN:
                    if sub.startswith(new + "."):
                        ldm = f"{side}.mid.attn_1.{old}{sub[len(new) :]}"
                        return ldm, new != "group_norm"
    if module in (
        "encoder.conv_in",
        "encoder.conv_out",
        "decoder.conv_in",
        "decoder.conv_out",
    ):
        return key, False
    if module in ("quant_conv", "post_quant_conv"):
        return key, False
    raise ValueError(f"no LDM name for VAE key {key!r}")


def _vae_to_ldm(vae: Any) -> dict[str, torch.Tensor]:
    n_blocks = len(vae.config.block_out_channels)
    out: dict[str, torch.Tensor] = {}
    for key, value in vae.state_dict().items():
        ldm, is_conv = _vae_key_to_ldm(key, n_blocks)
        if is_conv and value.ndim == 2:
            value = value[:, :, None, None]
        out[_VAE_PREFIX + ldm] = value
    return out


def _clip_to_ldm(text_encoder: Any) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in text_encoder.state_dict().items():
        # transformers >= 5.6 flattened CLIPTextModel (no "text_model." level); LDM keeps it.
        full = key if key.startswith("text_model.") else "text_model." + key
        out[_CLIP_PREFIX + full] = value
    return out


def ldm_state_dict(pipe: Any) -> dict[str, torch.Tensor]:
    """The pipeline's UNet, VAE and CLIP text encoder weights in the LDM key layout.

    Written for SD 1.x-shaped pipelines (the tiny one included): resnets, cross-attention
    transformers, a cross-attention mid block, integer ``layers_per_block``, a KL VAE with one
    mid attention, a CLIP (not OpenCLIP) text encoder.
    """
    state: dict[str, torch.Tensor] = {}
    state.update(_unet_to_ldm(pipe.unet))
    state.update(_vae_to_ldm(pipe.vae))
    state.update(_clip_to_ldm(pipe.text_encoder))
    return {k: v.detach().contiguous() for k, v in state.items()}


def save_single_file_checkpoint(pipe: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``pipe``'s weights as one LDM-layout ``.safetensors`` file, like a model-site file.

    Load it back offline with a folder that holds the pipeline's configs (``model_index.json``,
    the component ``config.json`` files, tokenizer and scheduler), weights not needed::

        StableDiffusionPipeline.from_single_file(
            path, config=str(config_folder), local_files_only=True
        )
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(ldm_state_dict(pipe), str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
