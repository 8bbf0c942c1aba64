"""pixelkiln.json beside a model folder: serving defaults are taken, bad files are refused with
an error that names the file and the field (a model must not load with wrong padding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelkiln_server.catalogue import spec_for_source
from pixelkiln_server.errors import InvalidArgument
from pixelkiln_server.folder_meta import read_meta


def folder(tmp_path: Path, meta: object) -> Path:
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "StableDiffusionPipeline"})
    )
    (tmp_path / "pixelkiln.json").write_text(json.dumps(meta))
    return tmp_path


def test_a_folder_brings_its_serving_defaults(tmp_path: Path) -> None:
    good = {
        "native_size": 64,
        "default_steps": 8,
        "default_guidance": 4.0,
        "padding": "circular",
        "preview_factors": {"matrix": [[0.1, 0.2, 0.3]] * 8, "bias": [0.0, 0.0, 0.0]},
    }
    spec = spec_for_source("mine", str(folder(tmp_path, good)))
    assert (spec.native_width, spec.default_steps, spec.default_guidance) == (64, 8, 4.0)
    meta = read_meta(tmp_path)
    assert meta is not None and meta.padding == "circular" and len(meta.preview_matrix or ()) == 8
    assert read_meta(tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    "meta, field",
    [
        ({"padding": "reflect"}, "padding"),
        ({"preview_factors": {"matrix": [[1, 2]], "bias": [0, 0, 0]}}, "preview_factors"),
        ({"preview_factors": {"matrix": [[1, 2, "x"]], "bias": [0, 0, 0]}}, "preview_factors"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, meta: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        spec_for_source("mine", str(folder(tmp_path, meta)))
    assert info.value.field == "model"
    assert field in info.value.message and "pixelkiln.json" in info.value.message


def test_unreadable_json_is_refused(tmp_path: Path) -> None:
    folder(tmp_path, {})
    (tmp_path / "pixelkiln.json").write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        read_meta(tmp_path)
