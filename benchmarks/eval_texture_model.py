"""Judge a texture-and-sprite model folder on held-out seeds with a procedural "judge".

    python benchmarks/eval_texture_model.py --model shipped   # the shipped folder
    python benchmarks/eval_texture_model.py --model /tmp/kiln-smoke --quick

1. **The judge.** A small CNN (grey-level input, so it cannot see colour) is trained on fresh
   procedural images from ``tools/texgen`` to name the subject: one of the 12 patterns or 10
   sprites. Colours are named by hue: chroma-weighted mean hue, saturation and value of the
   image (for sprites, the matted, despilled foreground the daemon delivers) against
   per-colour prototypes measured on texgen data (colour judge v2). Both judges live in
   ``texture_judges.py``. The judge is cached (``--judge-cache``) and first checked on fresh
   procedural images, raw and passed through the model's own VAE (encode + decode): only a
   judge that scores >= 95% through the VAE says something about the UNet.
2. **Generation.** Every pattern x colour and sprite x colour pair (``--per-pair`` prompts
   each: the canonical caption, then caption variants), seeds never used in training, at the
   model's native size with its recommended steps and guidance, circular padding as the
   daemon applies it; sprites get the daemon's transparent-background prompt suffix and are
   matted with its matte.
3. **Scores** against the goals: pattern accuracy >= 80%, colour accuracy >= 90%, sprite
   alpha coverage within 10-70% of the canvas, and a 256x256 image with 8 steps in <= 1 s
   (in-process pipeline call, fp32 on this machine's CPU; the median of a few runs).

Prints a table, writes JSON and a grid PNG of samples (``--out``). Measured, not asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

import texgen  # noqa: E402
from texture_judges import (  # noqa: E402
    COLOUR_JUDGE_VERSION,
    JUDGE_SEED,
    ColourJudge,
    classify,
    procedural,
    sprite_alpha,
    train_judge,
)

from pixelkiln_server.catalogue import SHIPPED_FOLDER  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
EVAL_SEED = 10_000  # generation seeds start here; training never draws these
PATTERN_GOAL = 0.80
COLOUR_GOAL = 0.90
COVERAGE_GOAL = (0.10, 0.70)  # sprite alpha coverage of the canvas
SECONDS_256_GOAL = 1.0  # 256x256, 8 steps
LARGE_SIZES = (256, 512)  # generated on larger latents: how quality and time hold up


@dataclass(frozen=True)
class Settings:
    quick: bool
    judge_images: int
    judge_epochs: int
    check_images: int
    per_pair: int
    timing_runs: int

    @classmethod
    def make(cls, quick: bool, per_pair: int | None) -> Settings:
        if quick:
            return cls(True, 128, 1, 22, per_pair or 1, 1)
        return cls(False, 6_800, 6, 440, per_pair or 2, 5)


# --------------------------------------------------------------------------- the model


@dataclass
class Model:
    pipe: Any
    size: int
    steps: int
    guidance: float
    meta: dict[str, Any]


def load_model(folder: Path, steps: int | None, guidance: float | None) -> Model:
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        folder,
        local_files_only=True,
        torch_dtype=torch.float32,
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    meta_path = folder / "pixelkiln.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    size = int(meta.get("native_size", pipe.vae.config.sample_size or 64))
    return Model(
        pipe,
        size,
        steps or int(meta.get("default_steps", 8)),
        guidance if guidance is not None else float(meta.get("default_guidance", 4.0)),
        meta,
    )


def circular(model: Model) -> Any:
    """The daemon's tiling context (circular padding on the UNet and VAE convolutions)."""
    from pixelkiln_server.backends.tiling import circular_padding

    return circular_padding([model.pipe.unet, model.pipe.vae], True, True)


def through_vae(model: Model, images: np.ndarray) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad(), circular(model):
        for i in range(0, len(images), 32):
            x = torch.from_numpy(images[i : i + 32]).permute(0, 3, 1, 2).float() / 127.5 - 1
            if x.shape[-1] != model.size:
                x = torch.nn.functional.interpolate(x, size=model.size, mode="area")
            z = model.pipe.vae.encode(x).latent_dist.mode()
            y = model.pipe.vae.decode(z).sample.clamp(-1, 1)
            out.append(((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def generate(model: Model, prompts: list[str], seeds: list[int], size: int) -> np.ndarray:
    import torch

    from pixelkiln_server.imaging import torus

    out = []
    with circular(model):
        for i in range(0, len(prompts), 10):
            gens = [torch.Generator().manual_seed(s) for s in seeds[i : i + 10]]
            result = model.pipe(
                prompts[i : i + 10],
                height=size,
                width=size,
                num_inference_steps=model.steps,
                guidance_scale=model.guidance,
                generator=gens,
                output_type="np",
            )
            out.append((np.clip(result.images, 0, 1) * 255).round().astype(np.uint8))
    # As the daemon serves a wrapping model's untiled output: subjects rolled to the centre.
    return np.stack([torus.center_subject(img) for img in np.concatenate(out)])


def time_generation(model: Model, size: int, steps: int, runs: int) -> float:
    import torch

    seconds = []
    warmup = 1 if runs > 1 else 0  # --quick: one cold call
    with circular(model):
        for i in range(runs + warmup):
            gen = torch.Generator().manual_seed(i)
            t0 = time.perf_counter()
            model.pipe(
                "red brick wall",
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=model.guidance,
                generator=gen,
                output_type="np",
            )
            if i >= warmup:
                seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


# --------------------------------------------------------------------------- evaluation


@dataclass
class Case:
    kind: str
    subject: str
    colour: str
    prompt: str
    seed: int


def cases(settings: Settings) -> list[Case]:
    rng = np.random.default_rng(EVAL_SEED)
    pairs = [("texture", p, c) for p in texgen.PATTERN_NAMES for c in texgen.COLOUR_NAMES]
    pairs += [("sprite", s, c) for s in texgen.SPRITE_NAMES for c in texgen.COLOUR_NAMES]
    if settings.quick:  # one colour per subject, cycling through the colours
        n = len(texgen.COLOUR_NAMES)
        pairs = [p for i, p in enumerate(pairs) if i % n == (i // n) % n][::2]
    out: list[Case] = []
    for rep in range(settings.per_pair):
        for kind, subject, colour in pairs:
            if kind == "texture":
                options = texgen.texture_captions(subject, colour)
            else:
                options = texgen.sprite_captions(subject, colour)
            base = options[0] if rep == 0 else options[int(rng.integers(len(options)))]
            prompt = texgen.transparent_prompt(base) if kind == "sprite" else base
            out.append(Case(kind, subject, colour, prompt, EVAL_SEED + len(out)))
    return out


def large_size_accuracy(
    model: Model, judge: Any, colours: ColourJudge, n: int, size: int
) -> dict[str, float]:
    """How quality holds up at ``size`` (256: a 32x32 latent; trained at 8x8): textures judged
    on four 64x64 crops, one from each quarter (the pattern keeps its scale, so a 256 image
    holds 16 tiles' worth), colours on the whole image."""
    rng = np.random.default_rng(EVAL_SEED + 1)
    picks = [
        (texgen.PATTERN_NAMES[i % len(texgen.PATTERN_NAMES)], str(rng.choice(texgen.COLOUR_NAMES)))
        for i in range(n)
    ]
    prompts = [texgen.canonical_caption(p, c) for p, c in picks]
    seeds = [EVAL_SEED + 50_000 + i for i in range(n)]
    images = generate(model, prompts, seeds, size)
    half = size // 2
    crops = np.stack(
        [img[y : y + 64, x : x + 64] for img in images for y in (0, half) for x in (0, half)]
    )
    named = classify(judge, crops)
    pattern = [name == picks[i // 4][0] for i, name in enumerate(named)]
    colour = [colours.name(img, "texture") == c for img, (_, c) in zip(images, picks, strict=True)]
    return {"pattern": accuracy(pattern), "colour": accuracy(colour)}


def accuracy(hits: list[bool]) -> float:
    return float(np.mean(hits)) if hits else float("nan")


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pixelkiln_server.imaging import seam

    torch.set_num_threads(args.threads)
    settings = Settings.make(args.quick, args.per_pair)
    cache = None if args.judge_cache == "none" else Path(args.judge_cache)
    t0 = time.perf_counter()
    judge = train_judge(settings.judge_images, settings.judge_epochs, cache)
    judge_s = time.perf_counter() - t0
    print(f"judge ready in {judge_s:.1f} s", flush=True)

    model = load_model(args.model, args.steps, args.guidance)
    images, samples = procedural(JUDGE_SEED + 1, settings.check_images)
    colour_judge = ColourJudge(*procedural(JUDGE_SEED + 2, 110 if settings.quick else 680))
    recon = through_vae(model, images)
    truth = [s.subject for s in samples]
    judge_raw = accuracy([a == b for a, b in zip(classify(judge, images), truth, strict=True)])
    judge_vae = accuracy([a == b for a, b in zip(classify(judge, recon), truth, strict=True)])
    colour_raw = accuracy(
        [colour_judge.name(im, s.kind) == s.colour for im, s in zip(images, samples, strict=True)]
    )
    colour_vae = accuracy(
        [colour_judge.name(im, s.kind) == s.colour for im, s in zip(recon, samples, strict=True)]
    )
    vae_l1 = float(np.abs(recon.astype(np.float32) - images.astype(np.float32)).mean())

    todo = cases(settings)
    t0 = time.perf_counter()
    generated = generate(model, [c.prompt for c in todo], [c.seed for c in todo], model.size)
    gen_s = (time.perf_counter() - t0) / len(todo)
    named = classify(judge, generated)
    rows: list[dict[str, Any]] = []
    for case, img, subject in zip(todo, generated, named, strict=True):
        row: dict[str, Any] = {**case.__dict__, "judged": subject}
        row["colour_judged"] = colour_judge.name(img, case.kind)
        if case.kind == "sprite":
            row["coverage"] = float((sprite_alpha(img) > 0.5).mean())
        else:
            row["seam_ratio"] = seam.seam_metric(img, "xy").ratio
        rows.append(row)
    tex = [r for r in rows if r["kind"] == "texture"]
    spr = [r for r in rows if r["kind"] == "sprite"]
    lo, hi = COVERAGE_GOAL
    coverage = [r["coverage"] for r in spr]
    large = {
        size: large_size_accuracy(model, judge, colour_judge, 2 if settings.quick else 24, size)
        for size in LARGE_SIZES
    }
    seconds_large = {
        size: time_generation(model, size, 8, settings.timing_runs) for size in LARGE_SIZES
    }
    seconds_native = time_generation(model, model.size, model.steps, settings.timing_runs)
    metrics = {
        "judge_accuracy_procedural": judge_raw,
        "judge_accuracy_through_vae": judge_vae,
        "colour_judge_procedural": colour_raw,
        "colour_judge_through_vae": colour_vae,
        "vae_l1_0_255": vae_l1,
        "pattern_accuracy": accuracy([r["judged"] == r["subject"] for r in tex]),
        "sprite_accuracy": accuracy([r["judged"] == r["subject"] for r in spr]),
        "colour_accuracy": accuracy([r["colour_judged"] == r["colour"] for r in rows]),
        "colour_accuracy_textures": accuracy([r["colour_judged"] == r["colour"] for r in tex]),
        "colour_accuracy_sprites": accuracy([r["colour_judged"] == r["colour"] for r in spr]),
        "sprite_coverage_mean": float(np.mean(coverage)) if coverage else float("nan"),
        "sprite_coverage_in_range": accuracy([lo <= c <= hi for c in coverage]),
        "seam_ratio_median": float(np.median([r["seam_ratio"] for r in tex])) if tex else 0.0,
        **{f"pattern_accuracy_{size}_crops": large[size]["pattern"] for size in LARGE_SIZES},
        **{f"colour_accuracy_{size}": large[size]["colour"] for size in LARGE_SIZES},
        **{f"seconds_{size}_8_steps": seconds_large[size] for size in LARGE_SIZES},
        f"seconds_{model.size}_{model.steps}_steps": seconds_native,
        "seconds_per_image_batched": gen_s,
    }
    per_subject = {
        s: accuracy([r["judged"] == s for r in rows if r["subject"] == s])
        for s in texgen.SUBJECTS
        if any(r["subject"] == s for r in rows)
    }
    per_colour = {
        c: accuracy([r["colour_judged"] == c for r in rows if r["colour"] == c])
        for c in texgen.COLOUR_NAMES
    }
    report = {
        "model": str(args.model),
        "quick": settings.quick,
        "size": model.size,
        "steps": model.steps,
        "guidance": model.guidance,
        "images": len(rows),
        "judge_seconds": round(judge_s, 1),
        "colour_judge_version": COLOUR_JUDGE_VERSION,
        "metrics": metrics,
        "per_subject": per_subject,
        "per_colour": per_colour,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    from PIL import Image

    picks = list(range(0, len(todo), max(1, len(todo) // 40)))[:40]
    grid = texgen.grid_image([generated[i] for i in picks], cols=10)
    Image.fromarray(grid).save(out.with_suffix(".png"))
    print_table(report)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return report


def print_table(report: dict[str, Any]) -> None:
    m = report["metrics"]
    lo, hi = COVERAGE_GOAL
    rows = [
        ("judge on procedural images", m["judge_accuracy_procedural"], None),
        ("judge through the model's VAE", m["judge_accuracy_through_vae"], 0.95),
        ("colour judge on procedural", m["colour_judge_procedural"], None),
        ("colour judge through the VAE", m["colour_judge_through_vae"], None),
        ("pattern accuracy (textures)", m["pattern_accuracy"], PATTERN_GOAL),
        ("sprite accuracy", m["sprite_accuracy"], None),
        ("colour accuracy (all)", m["colour_accuracy"], COLOUR_GOAL),
        ("  textures", m["colour_accuracy_textures"], None),
        ("  sprites", m["colour_accuracy_sprites"], None),
        (f"sprites with coverage in {lo:.0%}-{hi:.0%}", m["sprite_coverage_in_range"], None),
    ]
    for size in LARGE_SIZES:
        rows.append(
            (f"{size}x{size}: pattern on 64px crops", m[f"pattern_accuracy_{size}_crops"], None)
        )
        rows.append((f"{size}x{size}: colour", m[f"colour_accuracy_{size}"], None))
    print(
        f"\nmodel {report['model']}  ({report['images']} images, {report['size']}px, "
        f"{report['steps']} steps, guidance {report['guidance']})"
    )
    print(f"{'metric':38s} {'value':>9s} {'goal':>8s}  ")
    for name, value, goal in rows:
        verdict = "" if goal is None else ("ok" if value >= goal else "MISS")
        g = "" if goal is None else f">= {goal:.0%}"
        print(f"{name:38s} {value:9.1%} {g:>8s}  {verdict}")
    cov = m["sprite_coverage_mean"]
    ok = "ok" if lo <= cov <= hi else "MISS"
    print(f"{'sprite alpha coverage (mean)':38s} {cov:9.1%} {'10-70%':>8s}  {ok}")
    print(f"{'texture seam ratio (median)':38s} {m['seam_ratio_median']:9.2f} {'~1':>8s}")
    print(f"{'VAE L1 error (0..255)':38s} {m['vae_l1_0_255']:9.2f}")
    s256 = m["seconds_256_8_steps"]
    ok = "ok" if s256 <= SECONDS_256_GOAL else "MISS"
    print(f"{'256x256, 8 steps (s, CPU here)':38s} {s256:9.3f} {'<= 1 s':>8s}  {ok}")
    for key, value in m.items():
        if key.startswith("seconds_") and key != "seconds_256_8_steps":
            print(f"{key:38s} {value:9.3f}")
    for what, scores, n in (
        ("subjects", report["per_subject"], 5),
        ("colours", report["per_colour"], 4),
    ):
        seen = [(k, v) for k, v in scores.items() if not np.isnan(v)]
        worst = sorted(seen, key=lambda kv: kv[1])[:n]
        print(f"weakest {what}: " + ", ".join(f"{k} {v:.0%}" for k, v in worst))


def main(argv: list[str] | None = None) -> int:
    from pixelkiln_server.config import default_home

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=lambda v: SHIPPED_FOLDER if v == "shipped" else Path(v),
        required=True,
        help="a diffusers model folder ('shipped': the package's pixelkiln-textures)",
    )
    parser.add_argument("--quick", action="store_true", help="few images, a rough judge")
    parser.add_argument("--steps", type=int, default=None, help="default: the model's own")
    parser.add_argument("--guidance", type=float, default=None, help="default: the model's own")
    parser.add_argument("--per-pair", type=int, default=None, help="prompts per pair")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--judge-cache",
        default=str(default_home() / "judges"),
        help="folder for the trained judge ('none': always retrain)",
    )
    parser.add_argument(
        "--out",
        default=str(RESULTS / "eval_texture_model"),
        help="path stem for the .json report and the .png grid",
    )
    args = parser.parse_args(argv)
    evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
