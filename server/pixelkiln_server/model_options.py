"""A model's speed and memory options (``ModelOptions``) and its LoRA adapters, checked when
they are made; ``backends/accel.py`` applies them at load."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidArgument

RUNTIMES = ("auto", "torch", "onnx")
QUANTIZE_MODES = ("fp8-dynamic", "int8-dynamic", "int8-weight", "nf4")
OFFLOAD_MODES = ("model", "sequential")
MAX_LORA_SCALE = 10.0


@dataclass(frozen=True)
class LoraAdapter:
    """A LoRA adapter loaded with its model: a diffusers/kohya LoRA file (.safetensors) or a
    folder holding one, and the scale used when a request does not choose one."""

    name: str
    path: str
    scale: float = 1.0


@dataclass(frozen=True)
class ModelOptions:
    """Speed and memory options of one model, applied at load (``backends/accel.py``) and
    reported per loaded model by Status. Device-independent checks run here, on creation, and
    raise InvalidArgument naming the option; checks that need the device (CUDA for
    ``cuda_graphs``/``offload``, compute capability 8.9 for fp8, torchao and peft installed)
    run at load.

    ``None`` means automatic: ``channels_last`` and ``fuse_qkv`` on for CUDA, off elsewhere;
    ``sdpa`` (diffusers' AttnProcessor2_0) on everywhere. Everything else is off by default.
    ``compile`` compiles the denoiser and warms it up at the native size when the model loads;
    another size, batch or CFG setting recompiles once on first use.
    """

    channels_last: bool | None = None
    fuse_qkv: bool | None = None
    sdpa: bool | None = None
    compile: bool = False
    cuda_graphs: bool = False
    quantize: str = ""
    tiny_vae: str = ""
    tiny_vae_decode: bool = False
    offload: str = ""
    loras: tuple[LoraAdapter, ...] = ()
    # "torch"; "onnx": an ONNX export of the weights serves what it can; "auto": whichever
    # of the two measures faster on this machine (backends/runtime_choice.py).
    runtime: str = "torch"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise InvalidArgument(
                "runtime", f"must be one of {', '.join(RUNTIMES)}; got {self.runtime!r}"
            )
        torch_only = self.torch_only
        if self.runtime == "onnx" and torch_only:
            raise InvalidArgument(
                "runtime",
                f"onnx cannot be combined with {', '.join(torch_only)} (torch options); "
                "use runtime auto or torch",
            )
        if self.quantize not in ("", *QUANTIZE_MODES):
            raise InvalidArgument(
                "quantize",
                f"must be one of {', '.join(QUANTIZE_MODES)} (or empty: off); "
                f"got {self.quantize!r}",
            )
        if self.offload not in ("", *OFFLOAD_MODES):
            raise InvalidArgument(
                "offload",
                f"must be one of {', '.join(OFFLOAD_MODES)} (or empty: off); got {self.offload!r}",
            )
        if self.cuda_graphs and not self.compile:
            raise InvalidArgument(
                "cuda_graphs", "needs compile (torch.compile mode=reduce-overhead captures them)"
            )
        if self.tiny_vae_decode and not self.tiny_vae:
            raise InvalidArgument("tiny_vae_decode", "needs tiny_vae (a TAESD-family folder)")
        if self.fuse_qkv and self.sdpa is False:
            raise InvalidArgument("fuse_qkv", "needs sdpa (the fused processor is SDPA-based)")
        if self.offload == "sequential" and (self.compile or self.quantize):
            raise InvalidArgument(
                "offload",
                "sequential offload cannot be combined with compile or quantize; use offload=model",
            )
        if self.loras and self.fuse_qkv:
            raise InvalidArgument(
                "fuse_qkv", "cannot be combined with LoRA adapters (fused projections skip them)"
            )
        if self.loras and self.quantize:
            raise InvalidArgument("quantize", "cannot be combined with LoRA adapters (yet)")
        names = [a.name for a in self.loras]
        for adapter in self.loras:
            if not adapter.name or not adapter.path:
                raise InvalidArgument("lora", "each adapter needs a NAME and a PATH")
            if names.count(adapter.name) > 1:
                raise InvalidArgument("lora", f"adapter name {adapter.name!r} is used twice")
            if not math.isfinite(adapter.scale) or abs(adapter.scale) > MAX_LORA_SCALE:
                raise InvalidArgument(
                    "lora",
                    f"scale of {adapter.name!r} must be within -{MAX_LORA_SCALE:g}.."
                    f"{MAX_LORA_SCALE:g}; got {adapter.scale}",
                )

    @property
    def torch_only(self) -> list[str]:
        """The options in effect that only the torch runtime applies (``runtime``)."""
        options = (
            ("compile", self.compile),
            ("quantize", self.quantize),
            ("offload", self.offload),
            ("lora", self.loras),
        )
        return [name for name, on in options if on]

    @property
    def lora_scales(self) -> dict[str, float]:
        return {a.name: a.scale for a in self.loras}
