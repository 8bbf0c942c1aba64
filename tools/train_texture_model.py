"""Train PixelKiln's own offline texture-and-sprite model from scratch, on generated data only.

    python tools/train_texture_model.py --out shipped              # the full recipe, ~1 h
    python tools/train_texture_model.py --smoke --out /tmp/kiln-smoke   # seconds

``shipped`` names the model folder inside the package,
``server/pixelkiln_server/weights/pixelkiln-textures``.

Three stages, all from one fixed seed, on the CPU, with deterministic torch settings and a
fixed thread count (the same machine, torch version and ``--threads`` give the same bytes):

1. **VAE** (``AutoencoderKL``, 8x down, 8 latent channels): L1 + image-gradient L1 +
   spectrum L1 (against blur) + a weak KL term, on 64x64 images from ``tools/texgen``.
2. **Tokenizer + text encoder**: a byte-level BPE CLIP tokenizer whose merges are learnt from
   every caption word texgen can produce (each becomes one token; any other text still
   encodes byte by byte), and a 2-layer ``CLIPTextModel`` pre-trained for a few seconds to
   name the subject, colour and key colour of a caption.
3. **UNet** (``UNet2DConditionModel`` with circular padding on every convolution,
   v-prediction, min-SNR weighting, 10% caption dropout for classifier-free guidance, EMA),
   trained on the VAE's latents (rolled at random: textures tile), with the text encoder
   fine-tuned alongside at a lower learning rate.

The result is a standard diffusers ``StableDiffusionPipeline`` folder (safetensors, fp16
weights, Euler "trailing" scheduler) written atomically, plus ``pixelkiln.json`` (recipe,
measured speeds, recommended steps/guidance, the preview latent->RGB factors) and the model
card. The model was trained with circular padding: apply it on load (see the model card).

The stages live in ``tools/texmodel/`` (one module each); this file is the command line.

``--vae-from FOLDER`` reuses the VAE of an earlier run (to iterate on stages 2-3 alone).
``--smoke`` runs every stage for a handful of steps (seconds) so the tooling can be tested;
``--minutes`` caps the wall time of a run (stages stop early; the steps actually done are
recorded, and only a run that was not cut short reproduces the recipe).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

from texmodel.recipe import Recipe, RecipeError  # noqa: E402
from texmodel.run import continue_training, train  # noqa: E402

from pixelkiln_server.catalogue import SHIPPED_FOLDER as SHIPPED  # noqa: E402


def shipped_or_path(value: str) -> Path:
    return SHIPPED if value == "shipped" else Path(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=shipped_or_path,
        required=True,
        help="model folder to write ('shipped': the package's pixelkiln-textures folder)",
    )
    parser.add_argument("--smoke", action="store_true", help="a handful of steps (seconds)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-time cap for the run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pool", type=int, default=None, help="generated images in memory")
    parser.add_argument("--vae-steps", type=int, default=None)
    parser.add_argument("--text-steps", type=int, default=None)
    parser.add_argument("--unet-steps", type=int, default=None)
    parser.add_argument("--unet-lr", type=float, default=None, help="UNet peak learning rate")
    parser.add_argument(
        "--unet-text-lr",
        type=float,
        default=None,
        help="peak learning rate of the text encoder while it is fine-tuned with the UNet",
    )
    parser.add_argument(
        "--unet-plain-levels",
        type=int,
        default=None,
        help="UNet levels from the top without attention (recipe: 1; 0 = attention everywhere)",
    )
    parser.add_argument("--no-grid", action="store_true", help="skip the sample grid")
    parser.add_argument(
        "--vae-from",
        type=shipped_or_path,
        default=None,
        help="skip stage 1: reuse the (fp16) VAE of this model folder; the result is then not "
        "the recipe's bytes, and pixelkiln.json says so",
    )
    parser.add_argument(
        "--continue-from",
        type=shipped_or_path,
        default=None,
        help="train the UNet of this finished model folder for --unet-steps more steps "
        "(VAE kept); pixelkiln.json records the continuation",
    )
    args = parser.parse_args(argv)
    if args.continue_from is not None:
        if (args.unet_steps or 0) < 1:
            parser.error("--continue-from needs --unet-steps >= 1")
        continue_training(args.continue_from, args.out, args.unet_steps, not args.no_grid)
        return 0
    recipe = Recipe.smoke() if args.smoke else Recipe.full()
    # Each of these flags sets the recipe field of the same name (argparse's dest).
    fields = (
        "seed threads pool vae_steps text_steps unet_steps unet_lr unet_text_lr unet_plain_levels"
    )
    overrides = {k: getattr(args, k) for k in fields.split()}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    try:
        recipe.check()  # before the data stage, not a minute into the run
    except RecipeError as exc:
        parser.error(f"--{exc.field.replace('_', '-')} {exc.message}")
    train(recipe, args.out, args.minutes, grid=not args.no_grid, vae_from=args.vae_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())
