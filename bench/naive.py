"""The naive per-record sync the economy bench compares incident-sync with.

Contract:
- :func:`naive_sync` is the script a user might write over the same connectors'
  public methods, one request each where the connector allows: for every record
  of the source side, search the other side by the record's id
  (``find_by_foreign_id([one])``); when nothing carries it, create the copy
  (``create([one])``, which marks the copy with the source id), write the copy's
  id back (``mark_foreign_id``) and, when asked, copy each comment
  (``add_comment``, one by one).
- ``mode="initial"``: the first run, every record in scope. The same script run
  again with nothing changed is the naive *idle* run: every record is searched
  once more and found, nothing written.
- ``mode="changed"``: the naive incremental run: each side pulled since
  ``since``; for every record found, its counterpart (searched by id) gets the
  record's mapped fields (``update``, one per record). It knows no echo, no
  conflict and no history: a fair floor for what "a loop over records" costs,
  not a product.
- The connectors, mapping profile and sign-in are exactly the product's
  (``sync.factory.build_engine`` over the same config), so request counts
  compare; nothing is written to the state store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.base import ConnectorError, NewRecord, PreconditionFailed, RemoteRecord
from mappings.mapper import comment_from_remote, comment_to_remote, to_fields
from sync.actions import side_title
from sync.engine import Engine
from sync.factory import build_engine, open_store
from sync.settings import load_settings

SIDES = ("servicenow", "jira")
MODES = ("initial", "changed")


def _other(side: str) -> str:
    return "jira" if side == "servicenow" else "servicenow"


def _mapped(engine: Engine, record: RemoteRecord, target: str,
            target_display: str = "") -> dict[str, Any]:
    """The record's fields in ``target``'s terms, through the product's mapping profile."""
    source = str(record.side)
    displays = {source: record.display, target: target_display}
    ctx = engine.session.fields.ctx_for(target, displays)
    return dict(to_fields(target, engine.incident(record), engine.profile, ctx).fields)


def _copy_comments(engine: Engine, record: RemoteRecord, target: str, target_id: str) -> int:
    source = str(record.side)
    ctx = engine.ctx
    origin = f"{side_title(source)} {record.display}"
    for raw in record.comments:
        neutral = comment_from_remote(source, raw, ctx[source])
        body = comment_to_remote(target, neutral, ctx[target], origin=origin)
        engine.connectors[target].add_comment(target_id, body, neutral.visibility.value)
    return len(record.comments)


def _initial(engine: Engine, source: str, comments: bool, counts: dict[str, int]) -> None:
    target = _other(source)
    src, dst = engine.connectors[source], engine.connectors[target]
    fields = engine.vendor_fields
    for record in src.pull(None, fields[source]):
        counts["pulled"] += 1
        try:
            if dst.find_by_foreign_id([record.id], fields[target]):
                continue
            (made,) = dst.create([NewRecord(
                fields=_mapped(engine, record, target), foreign_id=record.id,
                foreign_url=record.url, foreign_display=record.display)])
            if not made.ok or not made.id:
                raise ConnectorError(str(made.error or "create returned no id"))
            counts["created"] += 1
            src.mark_foreign_id(record.id, made.id)
            if comments:
                counts["comments"] += _copy_comments(engine, record, target, made.id)
        except (ConnectorError, PreconditionFailed):
            counts["failed"] += 1


def _changed(engine: Engine, since: datetime | None, counts: dict[str, int]) -> None:
    fields = engine.vendor_fields
    for source in SIDES:
        target = _other(source)
        src, dst = engine.connectors[source], engine.connectors[target]
        for record in src.pull(since, fields[source]):
            counts["pulled"] += 1
            try:
                found = dst.find_by_foreign_id([record.id], fields[target]).get(record.id)
                if found is None:
                    continue
                dst.update(found.id, _mapped(engine, record, target, found.display))
                counts["updated"] += 1
            except (ConnectorError, PreconditionFailed):
                counts["failed"] += 1


def naive_sync(config: Path, clock: Callable[[], datetime], *, mode: str = "initial",
               source: str = "servicenow", comments: bool = True,
               since: datetime | None = None) -> dict[str, int]:
    """One naive run over the config's tools; what it did, counted."""
    if mode not in MODES:
        raise ValueError(f"naive mode {mode!r}: choose one of {', '.join(MODES)}")
    if source not in SIDES:
        raise ValueError(f"naive source {source!r}: choose servicenow or jira")
    counts = {"pulled": 0, "created": 0, "updated": 0, "comments": 0, "failed": 0}
    settings = load_settings(config)
    store = open_store(settings)  # build_engine wants one; the naive script never uses it
    try:
        engine = build_engine(settings, store, clock=clock)
        try:
            engine.open()
            if mode == "initial":
                _initial(engine, source, comments, counts)
            else:
                _changed(engine, since, counts)
        finally:
            engine.close()
    finally:
        store.close()
    return counts
