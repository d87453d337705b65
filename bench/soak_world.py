"""What the soak tracks and how it reads the two tools back: edits, notes, a neutral reader.

Contract:
- :class:`Edit` is one person edit (side, record, neutral field, the neutral
  value as the edited tool reads it back, wall time, and the number of clean
  runs before it); :class:`Note` one comment a person wrote.
- :class:`Reader` reads records through the real connectors and the configured
  mapping profile, as ``incident-sync`` does, with a private scratch state
  store: it never writes to either tool nor to the soak's state store.
  :meth:`Reader.pair_holds` says whether both records of a pair hold an edit's
  value, the way the engine itself decides that two sides agree (equal, or
  equal once written across and read back through the other side's lossy
  value map).
- :func:`servicenow_comments` and :func:`jira_comments` count a record's
  comments by (own text, internal) as the sandboxes hold them, a copy's
  attribution line removed (:func:`comment_text`).
- Nothing here imports the test suite; the tests' state machine checks the
  same properties its own way.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.retry import RetryPolicy
from mappings.profile import load_profile
from mappings.wiki import wiki_to_text
from sync.audit import build_audit
from sync.engine import Engine, projection, with_values
from sync.factory import build_engine
from sync.settings import load_settings
from sync.state import Link, NoStateStore, StateStore

AGENTS = ["alice.smith", "bob.jones", "chen.wei", "dana.kowalski"]
JIRA_IMPACTS = ["Extensive / Widespread", "Significant / Large", "Moderate / Limited",
                "Minor / Localized"]
JIRA_URGENCIES = ["Critical", "High", "Medium", "Low"]
SIDES = ("servicenow", "jira")


@dataclass(frozen=True)
class Edit:
    side: str
    record_id: str
    field: str
    value: Any
    at: float
    epoch: int


@dataclass(frozen=True)
class Note:
    side: str
    record_id: str
    text: str
    internal: bool


def comment_text(text: str) -> str:
    """A comment's own text: a copy's attribution line and blank line removed."""
    if text.startswith("[") and "\n\n" in text:
        return text.split("\n\n", 1)[1]
    return text


def servicenow_comments(servicenow: Any, sys_id: str) -> Counter[tuple[str, bool]]:
    return Counter((comment_text(row["value"]), row["element"] == "work_notes")
                   for row in servicenow.journal(sys_id))


def jira_comments(jira: Any, key: str) -> Counter[tuple[str, bool]]:
    # The in-process helper answers as REST v2: wiki markup on Data Center.
    text = wiki_to_text if jira.mode == "datacenter" else str
    return Counter((comment_text(text(c["body"])), not c["jsdPublic"])
                   for c in jira.issue(key)["fields"]["comment"]["comments"])


class Reader:
    """Both tools read through the real connectors and mapping, never written to."""

    def __init__(self, config: Path, secrets: Mapping[str, str]) -> None:
        self.config = config
        # The sandboxes' test credential, in the environment only while the settings
        # load (they keep it as a SecretStr): nothing lingers for the rest of the process.
        saved = {name: os.environ.get(name) for name in secrets}
        os.environ.update(secrets)
        try:
            self.settings = load_settings(config)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self.engine: Engine = build_engine(
            self.settings, StateStore("sqlite://"),
            retry=RetryPolicy(max_attempts=3, base_wait=0.05, max_wait=0.2))
        self._opened = False

    def close(self) -> None:
        self.engine.close()
        self.engine.store.close()

    def _open(self) -> Engine:
        if not self._opened:
            self.engine.open()
            self._opened = True
        return self.engine

    def projection(self, side: str, record_id: str) -> tuple[Any, dict[str, Any]]:
        engine = self._open()
        record = engine.connectors[side].get_many([record_id], engine.vendor_fields[side])
        incident = engine.incident(record[record_id])
        return incident, projection(incident, engine.merged_fields)

    def value(self, side: str, record_id: str, name: str) -> Any:
        return self.projection(side, record_id)[1][name]

    def links(self) -> list[Link]:
        try:
            with StateStore(self.settings.state_url, create=False) as store:
                return store.all_links()
        except NoStateStore:
            return []

    def pair_values(self, link: Link, name: str) -> dict[str, Any]:
        return {side: self.projection(side, link.id_on(side))[1][name] for side in SIDES}

    def pair_holds(self, link: Link, name: str, wanted: list[Any]) -> Any:
        """The first of ``wanted`` (edits) both records of ``link`` hold, or None."""
        engine = self._open()
        read = {side: self.projection(side, link.id_on(side)) for side in SIDES}
        displays = {side: link.display_on(side) for side in SIDES}
        for edit in wanted:
            side = edit.side
            other = "jira" if side == "servicenow" else "servicenow"
            if read[side][1][name] != edit.value:
                continue
            across = engine.readback(other, with_values(read[side][0], {name: edit.value}),
                                     displays)[name]
            if read[other][1][name] in (edit.value, across):
                return edit
        return None

    def audit_drift(self) -> tuple[dict[str, int], list[str]]:
        """``audit``'s counts over the soak's own state store (read-only), and what differs."""
        with StateStore(self.settings.state_url, create=False) as store:
            engine = build_engine(self.settings, store,
                                  retry=RetryPolicy(max_attempts=3, base_wait=0.05,
                                                    max_wait=0.2))
            try:
                report = build_audit(engine)
            finally:
                engine.close()
        counts = report.counts()
        counts["known"] = 0
        details = []
        for pair in report.pairs:
            if pair.in_step:
                continue
            statuses = {side: self.value(side, pair.sides[side].id, "status")
                        for side in SIDES}
            unexplained = [d for d in pair.differences if not known_divergence(d, statuses)]
            if pair.differences and not unexplained and pair.missing is None:
                counts["differing"] -= 1
                counts["known"] += 1
            where = " <-> ".join(pair.sides[side].display for side in SIDES)
            details += [f"{where}: {d.field} ServiceNow {d.servicenow!r}, Jira {d.jira!r}"
                        + ("" if d in unexplained else " (known divergence)")
                        for d in pair.differences]
            if pair.missing is not None:
                details.append(f"{where}: the {pair.missing} record is gone")
        details += [f"orphan {o.side} {o.display}" for o in report.orphans]
        return counts, details


DONE = ("resolved", "closed")
_RESOLUTIONS = load_profile("default").rule("resolution_code")


def known_divergence(difference: Any, statuses: Mapping[str, Any]) -> bool:
    """A resolution-code difference the product documents (README, "Resolution
    codes"), reported apart from unexplained drift:

    - the default profile's resolution map is lossy: several ServiceNow close codes
      share one Jira resolution ("Workaround provided" and "Solution provided" are
      both "Done", which reads back as "Solution provided"), so two resolved records
      may differ in neutral terms while each holds what the other's value maps to;
    - an open Jira issue holds no resolution while a reopened ServiceNow incident
      keeps its last close code.

    Any other difference, a resolution that did not reach Jira included, is drift.
    """
    if difference.field != "resolution_code":
        return False
    both_done = statuses["servicenow"] in DONE and statuses["jira"] in DONE
    same_in_jira = (both_done and difference.jira is not None
                    and _jira_resolution(difference.servicenow)
                    == _jira_resolution(difference.jira))
    stale = (difference.jira is None and statuses["servicenow"] not in DONE
             and statuses["servicenow"] == statuses["jira"])
    return same_in_jira or stale


def _jira_resolution(code: Any) -> Any:
    """The Jira resolution the default profile writes for a neutral close code."""
    to_jira = _RESOLUTIONS.to_maps["jira"]
    return to_jira.get(str(code), to_jira.get("*"))
