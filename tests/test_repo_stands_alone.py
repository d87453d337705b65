"""The repository stands alone: no file points at design notes a clone does not have.

Everything a reader needs is in the repository (docs/architecture.md,
docs/vendor-notes.md) or cited by the vendor's public documentation, so no
tracked text file may name the project's private planning documents.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Spelt in pieces so this file does not name them itself.
PRIVATE_DOCUMENTS = ("DESIGN" + ".md", "VENDOR" + "_APIS", "STYLE" + ".md")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".json", ".yml", ".yaml",
                 ".html", ".csv", ".sh", ""}
SKIPPED_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache",
                ".ruff_cache", ".hypothesis", "node_modules"}


def tracked_text_files() -> list[Path]:
    """Files git tracks; outside a git checkout (an unpacked sdist), every file."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                                check=True, timeout=30).stdout.decode().split("\0")
        paths = [REPO / name for name in listed if name]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in REPO.rglob("*")
                 if not SKIPPED_DIRS.intersection(p.relative_to(REPO).parts)]
    return [p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES]


def test_the_listing_sees_code_docs_and_tests() -> None:
    names = {p.relative_to(REPO).as_posix() for p in tracked_text_files()}
    assert {"README.md", "sync/cli/app.py", "docs/architecture.md", "docs/vendor-notes.md",
            "tests/test_repo_stands_alone.py"} <= names


def test_no_tracked_file_names_a_private_planning_document() -> None:
    found = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary data
        for number, line in enumerate(text.splitlines(), 1):
            found += [f"{path.relative_to(REPO)}:{number}: {name}"
                      for name in PRIVATE_DOCUMENTS if name in line]
    assert not found, "point these at docs/ or the vendor's documentation:\n" + "\n".join(found)


def test_the_docs_the_code_points_at_exist_and_link_to_each_other() -> None:
    architecture = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    notes = (REPO / "docs" / "vendor-notes.md").read_text(encoding="utf-8")
    # Anchors used across the two documents resolve to headings.
    assert "## The sync algorithm" in architecture and "## Crash-safe creates" in architecture
    assert "## Exit status" in architecture
    for anchor, heading in (("#what-a-stock-jsm-project-has", "### What a stock JSM project has"),
                            ("#issue-properties", "### Issue properties")):
        assert f"vendor-notes.md{anchor}" in architecture and heading in notes
    # Every source key cited in the notes has an entry in its Sources table.
    cited = set(re.findall(r"\[([A-Z][A-Z0-9-]+)(?: [^\]]*)?\]", notes))
    listed = set(re.findall(r"^\| ([A-Z][A-Z0-9-]+) \|", notes, flags=re.MULTILINE))
    assert cited <= listed, sorted(cited - listed)
