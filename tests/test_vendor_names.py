"""The sync layer and its store name no vendor field: sides are values, not column names.

Two checks, both read without running the product:
- the state store's tables (:data:`sync.state_schema.metadata`) have no column
  named after a side ("servicenow", "jira"): per-side data lives in rows keyed
  by ``side``;
- no source file under ``sync/`` spells a vendor column name of the old layout
  or a vendor's link field (``servicenow_id``, ``jira_key``, ``correlation_id``,
  ``servicenow_value`` ...), except where :data:`ALLOWED` says why.
"""

from __future__ import annotations

import re
from pathlib import Path

from sync.state import SIDES
from sync.state_schema import metadata

REPO = Path(__file__).resolve().parent.parent

VENDOR_NAMES = re.compile(
    r"servicenow_id|jira_key|correlation_id|servicenow_comment|jira_comment|"
    r"servicenow_value|jira_value|servicenow_display|jira_display|"
    r"snapshot_servicenow|snapshot_jira|version_servicenow|version_jira"
)

# File -> the one line pattern allowed to name them there, and why.
ALLOWED: dict[str, tuple[str, str]] = {
    # The schema-2 step reads the columns it moves, so it must name them.
    "sync/state_migrate.py": (r".*", "migrations name the historical columns they move"),
    # Output documents (links, status, conflicts, audit) keep the keys scripts already read.
    "sync/output.py": (r"^RECORD_ID_KEYS = ", "output JSON keeps its record-id keys"),
}


def test_no_store_column_is_named_after_a_side() -> None:
    named = [f"{table.name}.{column.name}" for table in metadata.sorted_tables
             for column in table.columns if any(side in column.name for side in SIDES)]
    assert named == []


def test_sync_spells_no_vendor_column_name() -> None:
    found = []
    for path in sorted((REPO / "sync").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        allowed = re.compile(ALLOWED[relative][0]) if relative in ALLOWED else None
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if VENDOR_NAMES.search(line) and not (allowed and allowed.match(line)):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == [], "\n".join(found)


def test_the_guard_sees_a_vendor_name(tmp_path: Path) -> None:
    # The pattern itself must match what it guards against, or the test above proves nothing.
    assert VENDOR_NAMES.search('select servicenow_id from links')
    assert VENDOR_NAMES.search("conflict.jira_value")
    assert not VENDOR_NAMES.search("link.id_on('jira')")
