"""The README's table of published numbers is the one in swin_umamba.reproduction.recipes."""
from __future__ import annotations

import re
from pathlib import Path

from swin_umamba.reproduction.recipes import RECIPES

README = Path(__file__).resolve().parent.parent / "README.md"


def _published_table() -> tuple[list[str], dict[int, list[str]]]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| dataset | Swin-UMamba"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[int(re.search(r"\((\d{3})\)", cells[0]).group(1))] = cells
    return header, rows


def test_readme_table_shows_every_published_number_of_the_recipes():
    header, rows = _published_table()
    assert sorted(rows) == sorted(RECIPES)
    for dataset_id, recipe in RECIPES.items():
        row = rows[dataset_id]
        assert " / ".join(recipe.metrics) in row[0], f"row {row[0]!r} should name {recipe.metrics}"
        for column, method in enumerate(header[1:], start=1):
            values = recipe.published.get(method, {})
            expected = " / ".join(f"{values[m]:.4f}" for m in recipe.metrics if m in values) or "–"
            assert row[column] == expected, f"{dataset_id} {method}: README {row[column]!r}, recipes {expected!r}"
    assert set(header[1:]) == {method for recipe in RECIPES.values() for method in recipe.published}
