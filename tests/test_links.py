"""Every relative link in the committed Markdown (README, docs, study READMEs) names a file that
exists: the results folders move (results/<task>/<study>), and a link left behind is a dead end
for the reader who follows it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s#]+)")


def _markdown() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / f for f in out if "/records/" not in f]


def test_every_relative_markdown_link_resolves() -> None:
    dead = []
    for path in _markdown():
        for target in LINK.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                dead.append(f"{path.relative_to(REPO)} -> {target}")
    assert not dead, "\n".join(dead)
