"""The README's model table is the catalogue's facts (server/pixelkiln_server/model_facts.py):
every preset has a row with its download, GPU memory and licence, and the README shows the
table as generated, so a preset, a size or a default cannot change without the README."""

from __future__ import annotations

from pixelkiln_server.catalogue import PRESETS
from pixelkiln_server.model_facts import FACTS, markdown_table

from .conftest import ROOT


def test_every_preset_has_facts_and_a_row() -> None:
    assert set(FACTS) == set(PRESETS)
    table = markdown_table()
    for name, spec in PRESETS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"{spec.default_steps} step" in row
        if spec.memory_gb:
            assert f"{spec.memory_gb:g} GB" in row
    assert "Apache-2.0" in table and "Stability AI Community License" in table


def test_the_readme_shows_the_generated_table() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "run: python -m pixelkiln_server.model_facts"
