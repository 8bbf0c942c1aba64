"""Replaying a recipe: the keyword arguments it reproduces, the inputs it needs again, the
image of its batch it names (shared by Client and AsyncClient and the CLI). A recipe is data
from anywhere (a PNG someone shared): every field is checked, and none can name a file."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._request import build_request, check_keywords, image_to_pb

# What a recipe never holds (the daemon leaves them out: they do not decide the pixels), so a
# recipe cannot set them: images come from the caller, never from a path a recipe names (a
# shared PNG could otherwise make replay read any file and send it to the daemon).
_NOT_FROM_RECIPE = {
    "init_image",
    "mask",
    "client_request_id",
    "priority",
    "preview_every",
    "preview_max_side",
    "preview_encoding",
    "progress",
    "result_only",
}


def request_from_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments that reproduce a recipe (as found in a result or a PNG). Raises
    ValueError naming the first field that is not what a recipe holds (a recipe is data from
    anywhere: a PNG someone shared)."""
    req = recipe.get("request", recipe)
    if not isinstance(req, dict):
        raise ValueError("recipe: 'request' must be a JSON object")
    req = dict(req)
    for key in ("init_image", "mask"):
        if req.get(key) is not None:
            raise ValueError(
                f"recipe field {key!r}: a recipe carries no images (PixelKiln writes their "
                "SHA-256 only); pass the image again yourself"
            )
    settings = req.pop("map_settings", None) or {}
    if req.pop("background", "opaque") == "transparent":
        req["transparent"] = True
    if "trim_padding" in req:
        req["padding"] = req.pop("trim_padding")
    for key in ("height_blur", "normal_strength", "ao_radius", "ao_strength"):
        if key in settings:
            req[key] = settings[key]
    if "convention" in settings:
        req["normal_convention"] = settings["convention"]
    allowed = (set(build_request.__kwdefaults__ or {}) | {"prompt"}) - _NOT_FROM_RECIPE
    kwargs = {k: v for k, v in req.items() if k in allowed}
    for key, value in kwargs.items():  # each alone, so a bad one is named
        try:
            build_request(**{key: value}).SerializeToString()
        except Exception as exc:  # noqa: BLE001 - any wrong value is the recipe's mistake
            raise ValueError(f"recipe field {key!r}: {value!r:.80} is not usable ({exc})") from None
    return kwargs


# The inputs a recipe was made with, by the digest it keeps of each (never the image itself).
REPLAY_INPUTS = (("init_image", "init_image_sha256"), ("mask", "mask_sha256"))


class ReplayInputWarning(UserWarning):
    """A replay's init_image or mask is not the file its recipe was made with."""


def missing_inputs(recipe: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """The inputs (init_image, mask) ``recipe`` was made with that ``given`` lacks."""
    return [k for k, digest in REPLAY_INPUTS if recipe.get(digest) and given.get(k) is None]


def differing_inputs(recipe: dict[str, Any], given: Mapping[str, bytes]) -> list[str]:
    """The inputs of ``given`` (encoded bytes by name: init_image, mask) whose SHA-256 is not
    the one ``recipe`` keeps: a replay with them makes a different image."""
    return [
        key
        for key, digest in REPLAY_INPUTS
        if key in given
        and recipe.get(digest)
        and hashlib.sha256(given[key]).hexdigest() != recipe[digest]
    ]


def differs_note(what: str) -> str:
    """What the CLI notes and ``Client.replay`` warns when :func:`differing_inputs` names one."""
    return (
        f"{what} is not the file this recipe was made with (its SHA-256 differs): the result "
        "will differ"
    )


def image_index(recipe: dict[str, Any]) -> int | None:
    """The image of its batch a PNG's recipe belongs to (``image_index``), or None for a
    recipe of the whole request. ValueError when it is not an image the batch makes."""
    index = recipe.get("image_index")
    if index is None:
        return None
    req = recipe.get("request", recipe)
    count = req.get("num_images", 1) if isinstance(req, dict) else 1
    if (
        not isinstance(index, int)
        or isinstance(index, bool)
        or not isinstance(count, int)
        or not 0 <= index < count
    ):
        raise ValueError(
            f"recipe field 'image_index': {index!r} is not an image of its batch of {count!r}"
        )
    return index


def replay_request(recipe: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``Client.replay``'s keyword arguments: the recipe's, then ``overrides``. A recipe made
    with an init image or a mask needs them passed again: ValueError naming every one missing
    (the daemon would otherwise answer about a field the caller never set). One passed again
    that is not the file the recipe was made with is a :class:`ReplayInputWarning`."""
    check_keywords("replay", overrides, extra=("on_event",))
    missing = missing_inputs(recipe, overrides)
    if missing:
        raise ValueError(
            f"this recipe was made with {' and '.join(missing)}; pass "
            f"{', '.join(m + '=' for m in missing)} again (a recipe keeps only their SHA-256)"
        )
    overrides = dict(overrides)
    for key, _ in REPLAY_INPUTS:
        value = overrides.get(key)
        if value is not None:
            overrides[key] = image = image_to_pb(value, key)  # read once, sent as read
            if differing_inputs(recipe, {key: image.data}):
                what = f"{key} {value}" if isinstance(value, str | Path) else key
                warnings.warn(differs_note(what), ReplayInputWarning, stacklevel=3)
    return {**request_from_recipe(recipe), **overrides}
