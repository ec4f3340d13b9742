"""The documentation's links resolve, and the README stays short.

Every relative Markdown link (``[text](path)``, ``![alt](path)``) in README.md,
bench/README.md, docs/*.md and results/README.md must point to a file or folder that
exists; a ``#fragment`` pointing into a Markdown page must name one of its headings (GitHub's
anchors). Links to other sites are not followed. The results under results/ must be valid JSON.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAX_README_LINES = 250

# [text](target) and ![alt](target); the target ends at whitespace or ')' (an optional
# "title" after a space is ignored).
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~)")


def _pages() -> list[pathlib.Path]:
    pages = [ROOT / "README.md", ROOT / "bench" / "README.md", ROOT / "results" / "README.md"]
    pages += sorted((ROOT / "docs").glob("*.md"))
    return [page for page in pages if page.exists()]


def _prose(text: str) -> str:
    """The page without its fenced code blocks and inline code spans."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def _links(page: pathlib.Path) -> list[str]:
    return _LINK.findall(_prose(page.read_text(encoding="utf-8")))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: pathlib.Path) -> set[str]:
    anchors, seen = set(), {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


def test_pages_exist():
    names = {page.relative_to(ROOT).as_posix() for page in _pages()}
    assert {"README.md", "bench/README.md"} <= names
    assert any(name.startswith("docs/") for name in names)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        if _is_external(target):
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_links_stay_in_the_repository():
    for page in _pages():
        for target in _links(page):
            if _is_external(target):
                continue
            path = target.partition("#")[0]
            if path:
                resolved = (page.parent / path).resolve()
                assert ROOT in resolved.parents or resolved == ROOT, f"{page}: {target} leaves the repository"


def test_readme_links_something():
    targets = _links(ROOT / "README.md")
    assert any(target.startswith("bench/README.md") for target in targets)
    assert any(target.startswith("docs/") for target in targets)


def test_results_are_json():
    for path in sorted((ROOT / "results").glob("*.json")):
        json.loads(path.read_text(encoding="utf-8"))


def test_slug_and_link_parsing():
    assert _slug("Mean-scale hyperprior (`mbt2018_mean`), one model: in training") == (
        "mean-scale-hyperprior-mbt2018_mean-one-model-in-training"
    )
    assert _slug("Where the factorized prior's time went") == "where-the-factorized-priors-time-went"
    text = "see [a](x.md#b) and ![p](docs/p.png)\n```sh\n[no](nowhere.md)\n```\n`[no](nope.md)`"
    assert _LINK.findall(_prose(text)) == ["x.md#b", "docs/p.png"]
