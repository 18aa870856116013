"""The README and docs pages: links and anchors resolve, and the files, presets and recipes
their commands name exist (a moved page or a renamed preset fails here, not for a reader)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stepdiff.config import preset_names

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "BENCHMARKS.md",
        ROOT / "recipes" / "README.md",
        *(ROOT / "docs").rglob("*.md"),
    ]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, and a
    -1, -2 ... suffix on repeats."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    for line in FENCE.sub("", page.read_text()).splitlines():
        if line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            repeat = counts.get(slug, 0)
            counts[slug] = repeat + 1
            anchors.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    fences = [line for line in page.read_text().splitlines() if line.startswith("```")]
    assert len(fences) % 2 == 0, f"{page.name}: a code block is not closed"
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to missing {target}"
        if anchor:
            assert anchor in _anchors(file), f"{page.name}: no heading #{anchor} in {file.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_files_presets_and_recipes_named_in_commands_exist(page):
    text = page.read_text()
    for path in re.findall(r"\b((?:recipes|benchmarks|docs/scripts)/[\w\-]+\.(?:yaml|py))", text):
        assert (ROOT / path).is_file(), f"{page.name}: {path} does not exist"
    presets = set(preset_names("configs/train"))
    for name in re.findall(r"stepdiff train ([\w\-]+)(?=[\s`])", text):
        assert name in presets or name.isupper(), f"{page.name}: no training preset {name}"
