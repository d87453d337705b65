"""`audit` over both sandboxes: differences, missing records, orphans, conflicts, formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from connectors.sandbox.http import WRITE_METHODS
from mappings.profile import load_profile
from sync import __version__
from sync.audit import build_audit, profile_sha256
from sync.cli.main import app
from sync.state import StateStore

runner = CliRunner()


def sn_incident(servicenow: Any, title: str, **values: Any) -> dict[str, Any]:
    row = {"short_description": title, "description": f"{title}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN"}
    row.update(values)
    return servicenow.insert("incident", row)


def synced(sandboxes: tuple[Any, Any], sync_config: Any, make_engine: Any,
           titles: list[str]) -> tuple[Path, list[dict[str, Any]]]:
    servicenow, _ = sandboxes
    rows = [sn_incident(servicenow, title) for title in titles]
    config = sync_config()
    summary = make_engine(config).run()
    assert summary.failed == 0, summary.failures
    return config, rows


def test_audit_after_a_sync_finds_every_pair_in_step(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    config, _ = synced(sandboxes, sync_config, make_engine, ["VPN drops", "Disk full"])
    report = build_audit(make_engine(config))
    assert report.counts()["linked"] == 2
    assert report.clean, report.render("table")


def test_audit_reports_a_field_edited_on_one_side_before_the_next_sync(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, _jira = sandboxes
    config, rows = synced(sandboxes, sync_config, make_engine, ["VPN drops"])
    servicenow.update("incident", rows[0]["sys_id"], {"short_description": "VPN drops hourly"})
    report = build_audit(make_engine(config))
    [pair] = report.pairs
    assert [(d.field, d.servicenow, d.jira) for d in pair.differences] == [
        ("title", "VPN drops hourly", "VPN drops")
    ]


def test_audit_reports_orphans_and_missing_records_and_writes_nothing(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, _rows = synced(sandboxes, sync_config, make_engine, ["VPN drops", "Disk full"])
    jira.delete_issue(jira.issue_keys()[0])
    sn_incident(servicenow, "Printer on fire")  # not synced yet: an orphan
    servicenow.log.clear()
    jira.log.clear()
    report = build_audit(make_engine(config))
    assert [p.missing for p in report.pairs].count("jira") == 1
    assert [(o.side, o.title) for o in report.orphans] == [("servicenow", "Printer on fire")]
    for server in sandboxes:
        assert not [e for e in server.log.entries
                    if e.method in WRITE_METHODS and "/search" not in e.path]


def test_audit_command_renders_each_format(
    sandboxes: Any, sync_config: Any, make_engine: Any, tmp_path: Path
) -> None:
    servicenow, _ = sandboxes
    config, rows = synced(sandboxes, sync_config, make_engine, ["VPN drops"])
    servicenow.update("incident", rows[0]["sys_id"], {"urgency": "1"})

    as_json = runner.invoke(app, ["audit", "-c", str(config), "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["counts"]["differing"] == 1
    assert {d["field"] for d in data["pairs"][0]["differences"]} >= {"urgency"}

    as_csv = runner.invoke(app, ["audit", "-c", str(config), "--format", "csv"])
    rows_csv = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert any(r["kind"] == "differs" and r["field"] == "urgency" for r in rows_csv)

    out = tmp_path / "audit.html"
    as_html = runner.invoke(app, ["audit", "-c", str(config), "-f", "html", "-o", str(out)])
    assert as_html.exit_code == 0, as_html.output
    assert "audit written to" in as_html.stdout
    assert out.read_text().startswith("<!DOCTYPE html>")

    table = runner.invoke(app, ["audit", "-c", str(config)])
    assert table.exit_code == 0 and "urgency" in table.stdout


def test_audit_before_any_sync_lists_everything_as_orphans_and_creates_no_store(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "VPN drops")
    config = sync_config()
    result = runner.invoke(app, ["audit", "-c", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["orphans"] == 1
    assert not (config.parent / "state.db").exists()


def test_fields_only_one_tool_holds_are_not_differences(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, _ = sandboxes
    # On Hold carries a ServiceNow-only hold reason; Jira has no such field.
    config, _rows = synced(sandboxes, sync_config, make_engine, [])
    sn_incident(servicenow, "Waiting for the caller", state="3", hold_reason="4")
    summary = make_engine(config).run()
    assert summary.failed == 0, summary.failures
    report = build_audit(make_engine(config))
    assert report.clean, report.render("table")


def test_fail_on_drift_exits_1_for_a_differing_pair_and_0_once_in_step(
    sandboxes: Any, sync_config: Any, make_engine: Any, tmp_path: Path
) -> None:
    servicenow, _ = sandboxes
    config, rows = synced(sandboxes, sync_config, make_engine, ["VPN drops"])
    clean = runner.invoke(app, ["audit", "-c", str(config), "--fail-on-drift"])
    assert clean.exit_code == 0, clean.output

    servicenow.update("incident", rows[0]["sys_id"], {"short_description": "VPN drops hourly"})
    out = tmp_path / "audit.json"
    drift = runner.invoke(app, ["audit", "-c", str(config), "--fail-on-drift", "-f", "json",
                                "-o", str(out)])
    assert drift.exit_code == 1
    # The whole report is still written; the reason is one line on stderr.
    assert json.loads(out.read_text())["counts"]["differing"] == 1
    assert drift.stderr.strip().splitlines() == [
        "incident-sync: audit found drift: linked 1, in step 0, differing 1, orphans 0, "
        "open conflicts 0"
    ]


def test_fail_on_drift_counts_orphans_and_open_conflicts(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, _ = sandboxes
    config, _rows = synced(sandboxes, sync_config, make_engine, ["VPN drops"])
    sn_incident(servicenow, "Printer on fire")  # unsynced: an orphan
    orphaned = runner.invoke(app, ["audit", "-c", str(config), "--fail-on-drift", "-f", "csv"])
    assert orphaned.exit_code == 1
    assert "orphans 1" in orphaned.stderr

    make_engine(config).run()  # links the orphan
    store = StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False)
    with store:
        link = store.all_links()[0]
        with store.pair() as tx:
            tx.record_conflict(
                link.id,
                "urgency",
                base=2,
                values={"servicenow": 1, "jira": 3},
                resolution="manual",
                policy="manual",
                at=datetime.now(UTC),
            )
    conflicted = runner.invoke(app, ["audit", "-c", str(config), "--fail-on-drift"])
    assert conflicted.exit_code == 1
    assert "open conflicts 1" in conflicted.stderr and "orphans 0" in conflicted.stderr


def test_the_report_states_both_instances_scopes_mapping_hash_and_version(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, _ = synced(sandboxes, sync_config, make_engine, ["VPN drops"])
    config = sync_config(query="active=true", jql="labels != noise")
    sha = profile_sha256(load_profile("default"))
    data = json.loads(runner.invoke(app, ["audit", "-c", str(config), "-f", "json"]).stdout)
    about = data["report"]
    assert about["servicenow"] == {"url": servicenow.url, "table": "incident",
                                   "query": "active=true"}
    assert about["jira"]["url"] == jira.url and about["jira"]["jql"] == "labels != noise"
    assert about["mapping"]["name"] == "default" and about["mapping"]["sha256"] == sha
    assert about["tool_version"] == __version__
    assert datetime.fromisoformat(about["made_at"]) > datetime.now(UTC) - timedelta(minutes=5)
    pair = data["pairs"][0]
    assert pair["servicenow_url"].endswith(f"sys_id={pair['servicenow_id']}")
    assert pair["jira_url"].endswith(f"/browse/{pair['jira_key']}")

    table = runner.invoke(app, ["audit", "-c", str(config)]).stdout
    for fact in (servicenow.url, jira.url, '"labels != noise"', sha,
                 f"incident-sync {__version__}"):
        assert fact in table


def test_a_profile_extending_default_unchanged_has_the_default_hash(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('extends = "default"\n', encoding="utf-8")
    changed = tmp_path / "changed.toml"
    changed.write_text('extends = "default"\n[fields.title]\ndirection = "to-jira"\n',
                       encoding="utf-8")
    default = profile_sha256(load_profile("default"))
    assert profile_sha256(load_profile(str(mine))) == default
    assert profile_sha256(load_profile(str(changed))) != default


def test_a_lossy_resolution_map_is_in_step_not_drift(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """ServiceNow "Resolved by caller" travels to Jira as "Done", which reads back as
    "Solution provided": values never equal, yet the sync has nothing to write, so the
    audit must not call it drift. A resolution the map does not explain still is."""
    servicenow, _jira = sandboxes
    config, rows = synced(sandboxes, sync_config, make_engine, ["VPN drops", "Disk full"])
    for row, code in zip(rows, ["Resolved by caller", "Resolved by change"], strict=True):
        servicenow.update("incident", row["sys_id"], {
            "state": "6", "close_code": code, "close_notes": "fixed the tunnel"})
    summary = make_engine(config).run()
    assert summary.failed == 0, summary.failures
    assert make_engine(config).run().updated == 0  # the sync sees both pairs in step

    report = build_audit(make_engine(config))
    assert report.clean, report.render("table")

    # "Resolved by change" -> "Fixed" -> "Resolved by change": equal both ways. Change
    # ServiceNow's code to one whose Jira resolution is different: that is drift.
    servicenow.update("incident", rows[1]["sys_id"], {"close_code": "Duplicate"})
    report = build_audit(make_engine(config))
    differing = {(p.name_on("servicenow"), d.field) for p in report.pairs for d in p.differences}
    assert differing == {(rows[1]["number"], "resolution_code")}
