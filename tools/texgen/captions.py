"""Natural captions for textures and sprites, and the full caption vocabulary.

Captions name one colour and one subject: "red brick wall", "dark oak planks", "mossy
cobblestone", "gold coin sprite". Sprite captions usually end with exactly the suffix the
daemon appends to prompts for transparent sprites (``pixelkiln_server.imaging.matte``), so a
request like ``generate("gold coin sprite", transparent=True)`` reaches the model in the very
words it was trained on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from pixelkiln_server.imaging import matte

from .colours import COLOUR_BY_NAME, COLOURS

TEXTURE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "brick": ("{c} brick wall", "{c} bricks", "{c} brick texture", "wall of {c} bricks"),
    "planks": ("{c} wooden planks", "{c} wood planks", "{c} plank floor", "{c} floorboards"),
    "marble": ("{c} marble", "polished {c} marble", "{c} marble slab", "{c} veined marble"),
    "cobblestone": ("{c} cobblestone", "{c} cobblestone path", "{c} cobbles", "{c} stone path"),
    "moss": ("{c} moss", "{c} moss texture", "{c} mossy ground", "soft {c} moss"),
    "sand": ("{c} sand", "{c} sand dunes", "{c} sandy ground", "rippled {c} sand"),
    "water": ("{c} water", "{c} water surface", "{c} rippling water", "{c} pool water"),
    "lava": ("{c} lava", "molten {c} lava", "{c} magma", "glowing {c} lava"),
    "checker": ("{c} checker tiles", "{c} checkerboard floor", "{c} checkered tiles"),
    "metal": ("{c} metal plates", "{c} riveted metal", "{c} metal floor plates"),
    "shingles": ("{c} roof shingles", "{c} roof tiles", "{c} shingle roof"),
    "hexagon": ("{c} hexagon tiles", "{c} hex tiles", "{c} hexagonal floor tiles"),
}

SPRITE_NAMES: dict[str, tuple[str, ...]] = {
    "coin": ("coin",),
    "gem": ("gem", "jewel", "gemstone"),
    "heart": ("heart",),
    "star": ("star",),
    "potion": ("potion", "potion bottle"),
    "key": ("key",),
    "shield": ("shield",),
    "sword": ("sword",),
    "mushroom": ("mushroom",),
    "chest": ("chest", "treasure chest"),
}
SPRITE_TEMPLATES = ("{c} {s} sprite", "{c} {s} icon", "{c} {s} game sprite", "{c} {s}")

# Whole captions (or colour words) that belong to one subject and colour.
SPECIAL_CAPTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("planks", "brown"): ("dark oak planks",),
    ("planks", "yellow"): ("light pine planks",),
    ("cobblestone", "green"): ("mossy cobblestone",),
    ("lava", "orange"): ("molten lava",),
    ("water", "blue"): ("ocean water",),
    ("sand", "yellow"): ("desert sand",),
    ("brick", "red"): ("old red brick wall",),
}
SPECIAL_WORDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("coin", "yellow"): ("gold", "golden", "yellow"),
    ("coin", "grey"): ("silver", "grey"),
    ("key", "yellow"): ("golden", "gold", "yellow"),
    ("sword", "grey"): ("steel", "iron", "grey"),
}
PREFIXES = ("seamless ", "tileable ")
SUFFIX_TEXTURE = " texture"
SPRITE_SUFFIX_P = 0.75  # share of sprite captions carrying the daemon's key-colour suffix


def colour_words(subject: str, colour: str) -> tuple[str, ...]:
    return SPECIAL_WORDS.get((subject, colour), COLOUR_BY_NAME[colour].words)


def texture_captions(pattern: str, colour: str) -> tuple[str, ...]:
    """Every base caption of a pattern in a colour; the first is the canonical one."""
    out = [t.format(c=w) for w in colour_words(pattern, colour) for t in TEXTURE_TEMPLATES[pattern]]
    return (*out, *SPECIAL_CAPTIONS.get((pattern, colour), ()))


def sprite_captions(kind: str, colour: str) -> tuple[str, ...]:
    """Every base caption of a sprite in a colour (without the key suffix); canonical first."""
    return tuple(
        t.format(c=w, s=s)
        for w in colour_words(kind, colour)
        for s in SPRITE_NAMES[kind]
        for t in SPRITE_TEMPLATES
    )


def canonical_caption(subject: str, colour: str) -> str:
    """The one caption used for evaluation: "red brick wall", "gold coin sprite"."""
    if subject in TEXTURE_TEMPLATES:
        return texture_captions(subject, colour)[0]
    return sprite_captions(subject, colour)[0]


def transparent_prompt(caption: str) -> str:
    """``caption`` as the daemon sends it for a transparent sprite (key colour suffix)."""
    return caption + matte.key_prompt_suffix(matte.choose_key_color(caption))


def pick_texture_caption(pattern: str, colour: str, rng: np.random.Generator) -> str:
    options = texture_captions(pattern, colour)
    # Often the canonical caption, so the plainest prompts are well covered.
    base = options[0] if rng.random() < 0.3 else options[int(rng.integers(len(options)))]
    roll = rng.random()
    if roll < 0.12:
        base = PREFIXES[0] + base
    elif roll < 0.18:
        base = PREFIXES[1] + base
    if rng.random() < 0.12 and not base.endswith("texture"):
        base += SUFFIX_TEXTURE
    return base


def pick_sprite_caption(kind: str, colour: str, rng: np.random.Generator) -> tuple[str, bool]:
    """(base caption, whether to append the key suffix)."""
    options = sprite_captions(kind, colour)
    base = options[0] if rng.random() < 0.3 else options[int(rng.integers(len(options)))]
    return base, bool(rng.random() < SPRITE_SUFFIX_P)


def all_captions() -> Iterator[str]:
    """Every caption the generator can produce (prefix/suffix variants included)."""
    for pattern in TEXTURE_TEMPLATES:
        for colour in COLOURS:
            for base in texture_captions(pattern, colour.name):
                yield base
                yield base + SUFFIX_TEXTURE
                for prefix in PREFIXES:
                    yield prefix + base
    for kind in SPRITE_NAMES:
        for colour in COLOURS:
            for base in sprite_captions(kind, colour.name):
                yield base
                yield transparent_prompt(base)


def word_counts() -> Counter[str]:
    """Word frequencies over :func:`all_captions` (punctuation split off), for a tokenizer."""
    counts: Counter[str] = Counter()
    for caption in all_captions():
        counts.update(caption.replace(",", " , ").split())
    return counts
