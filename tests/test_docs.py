"""The README and docs/: a short guide whose links all lead somewhere.

Links are checked as GitHub renders them: a relative link must name a file of the repository, and
its ``#anchor`` a heading of that file (GitHub's slug: lower case, punctuation dropped, spaces to
hyphens, ``-1``, ``-2`` for repeats).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
PAGES = sorted([README, *(PROJECT_ROOT / "docs").rglob("*.md")])
# Written by a command, not by hand: may be missing in a fresh clone until that command runs.
GENERATED = {PROJECT_ROOT / "docs" / "benchmarks.md": "make bench"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (their brackets are code, not links)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def slug(heading: str, seen: dict[str, int]) -> str:
    base = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    return {slug(m.group(1), seen)
            for m in re.finditer(r"^#{1,6} (.+)$", _prose(page.read_text(encoding="utf-8")), re.M)}


def links(page: Path) -> list[str]:
    return [a or b for a, b in LINK.findall(_prose(page.read_text(encoding="utf-8")))]


def test_the_readme_is_a_short_guide() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, len(lines)
    text = "\n".join(lines)
    for page in ("docs/twin.md", "docs/protocol.md", "docs/acks.md", "docs/auth.md",
                 "docs/clients.md", "docs/deploy.md", "docs/operations.md", "docs/fidelity.md",
                 "docs/loadtest/README.md", "docs/benchmarks.md"):
        assert f"]({page}" in text, page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if dest in GENERATED and not dest.exists():
            continue
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_product_docs_name_no_issue_or_session(page: Path) -> None:
    """The project's own tracker means nothing to a reader; another project's issue is a citation."""
    text = page.read_text(encoding="utf-8")
    own = re.findall(r"(?<!SAM )(?<!serverless )\b(?:issue|session|item) \d+\b", text, re.I)
    assert own == []
