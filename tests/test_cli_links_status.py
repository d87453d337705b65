"""`incident-sync links` and `status`: tables for people, stable JSON for scripts."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli.main import app
from sync.state import SCHEMA_VERSION, LinkSide, StateStore

runner = CliRunner()
SYS_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

CONFIG = """\
[servicenow]
instance_url = "http://127.0.0.1:8001"
username = "admin"

[jira]
url = "http://127.0.0.1:8002"
email = "admin"
project = "OPS"

[sync]
state_url = "sqlite:///state/incident-sync.db"
"""


# Prove the commands need nothing from the caller's environment.
pytestmark = pytest.mark.usefixtures("no_incident_sync_env")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    path = tmp_path / "incident-sync.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def db_of(config: Path) -> Path:
    return config.parent / "state" / "incident-sync.db"


def populate(config: Path) -> datetime:
    """A store after two runs: one link, a conflict, a due, a waiting and a parked item."""
    now = datetime.now(UTC)
    with StateStore(f"sqlite:///{db_of(config)}") as store:
        with store.pair() as tx:
            link = tx.save_link(
                {
                    "servicenow": LinkSide(
                        id=SYS_ID, display="INC0010001", snapshot={"title": "VPN down"}, version="7"
                    ),
                    "jira": LinkSide(
                        id="OPS-1",
                        display="OPS-1",
                        snapshot={"title": "VPN down"},
                        version="2026-03-01T09:00:00.000+0000",
                    ),
                },
                hash="h1",
            )
            tx.record_conflict(
                link.id,
                "urgency",
                base=2,
                values={"servicenow": 1, "jira": 3},
                resolution="manual",
                policy="manual",
                at=now - timedelta(minutes=3),
            )
            tx.record_rule_firings(link.id, [
                {"rule": "outage", "field": "urgency", "old": 2, "new": 1},
                {"rule": "major", "field": "internal_note", "old": None,
                 "new": "For Incident Managers: escalated", "note_id": "rules:major:escalation-2"},
            ], at=now - timedelta(hours=1))
            tx.set_rules_due(link.id, datetime(2026, 3, 1, 9, 15, 1, tzinfo=UTC))
        first = store.start_run("run", now - timedelta(hours=1))
        store.finish_run(first, finished=now - timedelta(hours=1) + timedelta(seconds=12.5),
                         counts={"created": 2, "updated": 1, "failed": 1,
                                 "rule_firings": 2},
                         outcome="items failed")
        store.start_run("run", now - timedelta(minutes=5))
        store.record_intent("jira", "OPS-5", "servicenow")
        store.record_failure("servicenow", SYS_ID, "ValidationFailed: [close_code] missing",
                             now=now - timedelta(days=2), base_seconds=60, max_attempts=5)
        store.record_failure("jira", "OPS-9", "503 Service Unavailable", now=now,
                             base_seconds=3600, max_attempts=5)
        store.record_failure("jira", "OPS-8", "400 bad value [red]x[/red]", now=now,
                             base_seconds=60, max_attempts=1)
    return now


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# ------------------------------------------------------------------ no store yet


@pytest.mark.parametrize("command", ["links", "status"])
def test_missing_store_is_reported_and_not_created(config: Path, command: str) -> None:
    code, out, _ = invoke(command, "--config", str(config))
    assert code == 0
    assert f"no state store at {db_of(config)} yet" in out
    assert not db_of(config).exists()


def test_missing_store_gives_empty_json_documents(config: Path) -> None:
    code, out, err = invoke("links", "--config", str(config), "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    assert "no state store at" in err
    code, out, _ = invoke("status", "--config", str(config), "--format", "json")
    assert code == 0
    assert json.loads(out) == {"store": None, "runs": [], "retry_queue": [], "conflicts": [],
                               "pending_creates": [], "rules": {"last_run_firings": None}}
    assert not db_of(config).exists()


def test_new_empty_store_prints_no_runs_yet(config: Path) -> None:
    StateStore(f"sqlite:///{db_of(config)}").close()
    code, out, _ = invoke("status", "--config", str(config))
    assert code == 0
    assert "no runs yet" in out
    assert "retry queue: empty" in out
    assert "open conflicts: none" in out
    code, out, _ = invoke("links", "--config", str(config))
    assert code == 0 and "no links yet" in out


# ------------------------------------------------------------------ links


def test_links_and_status_show_only_the_configured_connection(config: Path) -> None:
    populate(config)  # the "default" connection's link, runs, queue and conflict
    other = config.with_name("other.toml")
    other.write_text(CONFIG + 'connection = "other"\n', encoding="utf-8")
    code, out, _ = invoke("links", "--config", str(other), "--format", "json")
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = invoke("status", "--config", str(other), "--format", "json")
    document = json.loads(out)
    assert code == 0
    assert (document["runs"], document["retry_queue"], document["conflicts"],
            document["pending_creates"]) == ([], [], [], [])
    code, out, _ = invoke("links", "--config", str(config), "--format", "json")
    assert [link["jira_key"] for link in json.loads(out)] == ["OPS-1"]


def test_links_table_shows_both_ids_and_seen_versions(config: Path) -> None:
    populate(config)
    code, out, _ = invoke("links", "--config", str(config))
    assert code == 0
    for expected in ("INC0010001", "OPS-1", "Last synced", "1 link"):
        assert expected in out


def test_links_json_is_a_list_with_stable_key_order(config: Path) -> None:
    populate(config)
    code, out, _ = invoke("links", "--config", str(config), "--format", "json")
    assert code == 0
    [link] = json.loads(out)
    assert list(link) == [
        "id", "servicenow_id", "servicenow_display", "jira_key", "jira_display",
        "version_servicenow", "version_jira", "created_at", "last_synced",
    ]
    assert (link["servicenow_id"], link["servicenow_display"], link["jira_key"]) == (
        SYS_ID, "INC0010001", "OPS-1")
    assert (link["version_servicenow"], link["version_jira"]) == (
        "7", "2026-03-01T09:00:00.000+0000")
    assert datetime.fromisoformat(link["last_synced"]).tzinfo is not None
    again = invoke("links", "--config", str(config), "--format", "json")[1]
    assert again == out


def test_links_of_one_record_show_its_rule_firings_with_their_time(config: Path) -> None:
    populate(config)
    for record in ("INC0010001", SYS_ID, "OPS-1", "inc0010001"):
        code, out, _ = invoke("links", record, "--config", str(config))
        assert code == 0, out
        assert "ServiceNow INC0010001" in out and "Jira OPS-1" in out
        assert "rules next due: 2026-03-01T09:15:01+00:00" in out
        assert "Rule firings: 2" in out and "outage" in out and "urgency" in out
        assert "For Incident Managers: escalated" in out

    code, out, _ = invoke("links", "OPS-1", "--config", str(config), "-f", "json")
    document = json.loads(out)
    assert code == 0 and document["jira_key"] == "OPS-1"
    assert [(f["rule"], f["field"], f["old"], f["new"]) for f in document["rule_firings"]] == [
        ("outage", "urgency", 2, 1),
        ("major", "internal_note", None, "For Incident Managers: escalated")]
    assert document["rule_firings"][1]["note_id"] == "rules:major:escalation-2"
    assert datetime.fromisoformat(document["rule_firings"][0]["at"]).tzinfo is not None

    code, out, _ = invoke("links", "OPS-1", "--config", str(config), "-f", "csv")
    assert code == 0 and out.splitlines()[0] == "at,rule,field,old,new,note_id"

    code, out, err = invoke("links", "OPS-404", "--config", str(config))
    assert code == 2 and out == ""
    assert err.strip() == ("incident-sync: no link for 'OPS-404' (a ServiceNow number or"
                           " sys_id, or a Jira key)")


# ------------------------------------------------------------------ status


def test_status_table_shows_runs_queue_states_and_conflicts(config: Path) -> None:
    populate(config)
    code, out, _ = invoke("status", "--config", str(config))
    assert code == 0  # parked items are listed, not signalled
    assert "Last runs" in out and "items failed" in out and "12.5 s" in out
    assert "unfinished" in out
    assert "Retry queue: 1 due, 1 waiting, 1 parked" in out
    assert "INC0010001" in out and "OPS-9" in out
    # Record texts are printed literally, not read as console markup.
    assert "[close_code]" in out and "[red]x[/red]" in out
    assert "Open conflicts: 1" in out and "urgency" in out
    assert "pending create: jira OPS-5 -> servicenow" in out
    assert "rules: the last run fired 2 times" in out


def test_status_json_has_stable_keys_and_queue_states(config: Path) -> None:
    now = populate(config)
    code, out, _ = invoke("status", "--config", str(config), "-f", "json")
    assert code == 0
    document = json.loads(out)
    assert list(document) == ["store", "runs", "retry_queue", "conflicts", "pending_creates",
                              "rules"]
    assert document["rules"] == {"last_run_firings": 2}   # the last run that finished
    [pending] = document["pending_creates"]
    assert (pending["source_side"], pending["source_id"], pending["target_side"]) == (
        "jira", "OPS-5", "servicenow")
    assert document["store"] == f"sqlite:///{db_of(config)}"

    finished, running = document["runs"][1], document["runs"][0]
    assert list(finished) == ["id", "command", "started", "finished", "duration_seconds",
                              "outcome", "counts", "error"]
    assert finished["duration_seconds"] == 12.5
    assert finished["counts"] == {"created": 2, "failed": 1, "rule_firings": 2, "updated": 1}
    assert running["finished"] is None

    states = {item["record_id"]: item for item in document["retry_queue"]}
    assert {k: v["state"] for k, v in states.items()} == {
        SYS_ID: "due", "OPS-9": "waiting", "OPS-8": "parked"}
    assert states[SYS_ID]["display"] == "INC0010001"
    assert list(states["OPS-9"]) == ["side", "record_id", "display", "state", "attempts",
                                     "next_attempt", "last_error"]
    assert datetime.fromisoformat(states["OPS-9"]["next_attempt"]) > now

    [conflict] = document["conflicts"]
    assert {k: conflict[k] for k in ("servicenow_display", "jira_key", "field", "base",
                                     "servicenow_value", "jira_value", "policy")} == {
        "servicenow_display": "INC0010001", "jira_key": "OPS-1", "field": "urgency",
        "base": 2, "servicenow_value": 1, "jira_value": 3, "policy": "manual"}


def test_store_from_a_newer_version_is_a_config_error(config: Path) -> None:
    StateStore(f"sqlite:///{db_of(config)}").close()
    with sqlite3.connect(db_of(config)) as raw:
        raw.execute("update meta set value=? where key='schema_version'",
                    (str(SCHEMA_VERSION + 1),))
    for command in ("links", "status"):
        code, out, err = invoke(command, "--config", str(config))
        assert code == 2
        assert out == ""
        assert err.startswith("incident-sync: state store") and err.count("\n") == 1
        assert f"schema version {SCHEMA_VERSION + 1}" in err


def test_bad_format_is_a_usage_error(config: Path) -> None:
    code, _, _ = invoke("links", "--config", str(config), "--format", "xml")
    assert code == 2
