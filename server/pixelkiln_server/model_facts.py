"""What an operator needs to know before serving a preset: download size, GPU memory,
licence, whether the hub repo is gated. The README's model table is :func:`markdown_table`
(tests/test_model_facts.py fails when they drift apart, or when a preset has no facts).

Sizes are approximate and say how they were derived. ``memory_gb`` (weights at 16 bits, as
the daemon loads them on a GPU) is the catalogue's, counted from parameter counts; the
download is what diffusers fetches without a variant: every component's default weights
(fp32 for the Stability repos, so twice the fp16 memory; bf16 for FLUX and Z-Image), never
the single-file checkpoints beside them. The quantized figure is ``--quantize int8-weight``:
the denoiser's weights in 8 bits (half its 16-bit bytes), the rest unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalogue import PRESETS, ModelSpec


@dataclass(frozen=True)
class ModelFacts:
    download: str  # what a first start fetches
    denoiser_gb: float  # the denoiser's 16-bit weights (quantization halves them)
    licence: str
    gated: bool = False
    note: str = ""


STABILITY_LICENCE = "Stability AI Community License (commercial use free below USD 1M revenue)"

FACTS: dict[str, ModelFacts] = {
    "pixelkiln-textures": ModelFacts(
        "none (shipped in the package, 20 MB)", 0.017, "Apache-2.0", note="the default; CPU"
    ),
    "tiny-random": ModelFacts("none (built in code, random weights)", 0.0, "-", note="tests"),
    "tiny-sdxl": ModelFacts("none (built in code, random weights)", 0.0, "-", note="tests"),
    "tiny-flux": ModelFacts("none (built in code, random weights)", 0.0, "-", note="tests"),
    "tiny-z-image": ModelFacts("none (built in code, random weights)", 0.0, "-", note="tests"),
    "tiny-flux2-klein": ModelFacts("none (built in code, random weights)", 0.0, "-", note="tests"),
    "sd-turbo": ModelFacts("approx. 5.2 GB (fp32)", 1.74, STABILITY_LICENCE),
    "sdxl-turbo": ModelFacts("approx. 13.9 GB (fp32)", 5.14, STABILITY_LICENCE),
    "flux.1-schnell": ModelFacts("approx. 33.7 GB (bf16)", 23.8, "Apache-2.0"),
    "z-image-turbo": ModelFacts("approx. 20.5 GB (bf16)", 12.3, "Apache-2.0"),
    "flux.2-klein": ModelFacts(
        "approx. 16 GB (bf16)",
        7.8,
        "Apache-2.0",
        note="text-to-image here (its reference-image editing is not wired yet)",
    ),
}


def _vram(spec: ModelSpec, facts: ModelFacts) -> str:
    if not spec.memory_gb:
        return "-"
    return f"{spec.memory_gb:g} GB"


def _quantized(spec: ModelSpec, facts: ModelFacts) -> str:
    if not spec.memory_gb or facts.denoiser_gb < 1.0:
        return "-"
    return f"{spec.memory_gb - facts.denoiser_gb / 2:.1f} GB"


def rows() -> list[list[str]]:
    """One row per preset, in the catalogue's order."""
    out = []
    for name, spec in PRESETS.items():
        facts = FACTS[name]
        source = spec.source if "/" in spec.source and not spec.source.startswith("/") else ""
        out.append(
            [
                f"`{name}`",
                f"`{source}`" if source and not source.startswith("builtin:") else "-",
                f"{spec.native_width}, {spec.default_steps} step"
                f"{'s' if spec.default_steps > 1 else ''}, "
                f"guidance {spec.default_guidance:g}",
                facts.download,
                _vram(spec, facts),
                _quantized(spec, facts),
                facts.licence,
                "yes" if facts.gated else "no",
                facts.note,
            ]
        )
    return out


HEADERS = (
    "preset",
    "hub id",
    "native size, defaults",
    "download",
    "GPU memory (16-bit weights)",
    "with --quantize int8-weight",
    "licence",
    "gated",
    "",
)


def markdown_table() -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
