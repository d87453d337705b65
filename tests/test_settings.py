"""Strict configuration: TOML + environment, every error named by file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.errors import ConfigError
from sync.settings import Settings, load_settings, validate_tool_url

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """\
[servicenow]
instance_url = "https://dev12345.service-now.com"
username = "integration.user"

[jira]
url = "https://example.atlassian.net"
email = "integration@example.com"
project = "OPS"
"""


# Prove the commands need nothing from the caller's environment.
pytestmark = pytest.mark.usefixtures("no_incident_sync_env")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "incident-sync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.source == str(path)
    return caught.value.problems


def test_example_config_documents_every_key_and_loads() -> None:
    settings = load_settings(REPO / "config.example.toml")
    assert settings.jira.project == "OPS"
    text = (REPO / "config.example.toml").read_text()
    for section in ("servicenow", "jira", "sync"):
        model = type(getattr(settings, section))
        for key in model.model_fields:
            if key in ("password", "token"):
                assert f"INCIDENT_SYNC_{section.upper()}__{key.upper()}" in text
            else:
                assert f"{key} =" in text, f"config.example.toml does not document {key}"


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.servicenow.table == "incident"
    assert settings.servicenow.query == "active=true"
    assert settings.jira.issue_type == "Incident"
    assert settings.sync.direction == "both"
    assert settings.sync.conflict == "newest"
    assert settings.sync.mapping == "default"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__PROJECT", "HELP")
    monkeypatch.setenv("INCIDENT_SYNC_SYNC__CONFLICT", "manual")
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", "tok-123")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.jira.project == "HELP"
    assert settings.sync.conflict == "manual"
    assert settings.jira.token is not None
    assert settings.jira.token.get_secret_value() == "tok-123"
    assert settings.servicenow.username == "integration.user"  # untouched by the overlay


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv("INCIDENT_SYNC_CONFIG", str(path))
    assert load_settings().source == path.resolve()


def test_unknown_key_is_named_with_its_section(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('project = "OPS"', 'project = "OPS"\nprojet = "X"'))
    assert problems(path) == ["[jira] projet: unknown key"]


def test_unknown_section_is_named(tmp_path: Path) -> None:
    assert problems(write(tmp_path, MINIMAL + "\n[jiraa]\nurl = 'x'\n")) == [
        "[jiraa]: unknown section"
    ]


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '\n[sync]\nmax_attempts = "many"\n')
    [line] = problems(path)
    assert line.startswith("[sync] max_attempts:") and "'many'" in line


def test_connection_name_defaults_to_default_and_is_checked(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, MINIMAL)).sync.connection == "default"
    named = write(tmp_path, MINIMAL + '\n[sync]\nconnection = "ops-jira.eu_1"\n')
    assert load_settings(named).sync.connection == "ops-jira.eu_1"
    [line] = problems(write(tmp_path, MINIMAL + '\n[sync]\nconnection = "ops jira"\n'))
    assert line.startswith("[sync] connection:") and "'ops jira'" in line


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('username = "integration.user"\n', ""))
    assert problems(path) == ["[servicenow] username: missing (required)"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://dev.service-now.com", "not an http(s) URL"),
        ("http://dev.service-now.com", "only allowed to loopback"),
        ("https://user:pw@dev.service-now.com", "credentials must not be part of the URL"),
        ("dev.service-now.com", "not an http(s) URL"),
        ("https://dev.service-now.com/?x=1", "query or fragment"),
    ],
)
def test_bad_url_is_refused(tmp_path: Path, url: str, reason: str) -> None:
    path = write(tmp_path, MINIMAL.replace("https://dev12345.service-now.com", url))
    [line] = problems(path)
    assert line.startswith("[servicenow] instance_url:") and reason in line


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:80", "http://127.8.0.1"]
)
def test_plain_http_is_allowed_to_loopback_only(url: str) -> None:
    assert validate_tool_url(url + "/") == url


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace('project = "OPS"', 'project = "ops"')
        + '\n[sync]\ndirection = "sideways"\nconflict = "loudest"\n',
    )
    found = problems(path)
    assert len(found) == 3
    assert {p.split(":")[0] for p in found} == {
        "[jira] project", "[sync] direction", "[sync] conflict"
    }


def test_secret_in_the_file_works_but_is_never_echoed(tmp_path: Path) -> None:
    text = MINIMAL.replace('project = "OPS"', 'project = "OPS"\ntoken = "s3cr3t-token"')
    settings = load_settings(write(tmp_path, text))
    assert settings.jira.token is not None
    assert settings.jira.token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(settings) and "s3cr3t-token" not in str(settings)
    bad = text.replace('token = "s3cr3t-token"', "token = ['s3cr3t-token']")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, bad))
    assert "s3cr3t-token" not in str(caught.value)
    assert "[jira] token" in str(caught.value)


def test_secret_from_environment_with_a_bad_type_is_never_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", "hunter2")
    path = write(tmp_path, MINIMAL.replace("[jira]", "[jira]\ntimeout = -1"))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "hunter2" not in str(caught.value)


def test_env_sourced_problem_says_which_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INCIDENT_SYNC_SYNC__DIRECTION", "sideways")
    [line] = problems(write(tmp_path, MINIMAL))
    assert "INCIDENT_SYNC_SYNC__DIRECTION" in line


def test_missing_file_and_broken_toml(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == ["file not found (pass --config PATH)"]
    [line] = problems(write(tmp_path, "[servicenow\n"))
    assert line.startswith("not valid TOML")


def test_require_secrets_names_the_environment_variables(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError) as caught:
        settings.require_secrets()
    message = str(caught.value)
    assert "INCIDENT_SYNC_SERVICENOW__PASSWORD" in message
    assert "INCIDENT_SYNC_JIRA__TOKEN" in message


def test_relative_paths_are_anchored_at_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = sub / "incident-sync.toml"
    path.write_text(MINIMAL + '\n[sync]\nstate_url = "sqlite:///state/sync.db"\n')
    settings = load_settings(path)
    assert settings.state_url == f"sqlite:///{sub.resolve()}/state/sync.db"
    assert settings.resolve_path("rules.toml") == sub.resolve() / "rules.toml"


def test_settings_is_the_public_type(tmp_path: Path) -> None:
    assert type(load_settings(write(tmp_path, MINIMAL))) is Settings


def test_each_section_is_its_connectors_own_model_validated_once(tmp_path: Path) -> None:
    from connectors.jira import JiraConnector
    from connectors.jira_config import JiraConfig
    from connectors.servicenow import ServiceNowConnector
    from connectors.servicenow_config import ServiceNowConfig

    settings = load_settings(write(tmp_path, MINIMAL))
    assert type(settings.servicenow) is ServiceNowConfig
    assert type(settings.jira) is JiraConfig
    # from_config takes the validated model as it is: the connector reads it, checks nothing
    jira = JiraConnector.from_config(settings.jira, token="t0ken")
    servicenow = ServiceNowConnector.from_config(settings.servicenow, password="pw")
    assert jira.config is settings.jira and jira.project == "OPS" and jira.page_size == 100
    assert servicenow.config is settings.servicenow and servicenow.table == "incident"


def test_a_connectors_own_rule_is_reported_as_a_config_line(tmp_path: Path) -> None:
    # The scope JQL rule lives in the Jira connector's model: still one file line.
    path = write(tmp_path, MINIMAL.replace('project = "OPS"',
                                           'project = "OPS"\njql = "status = Open ORDER BY key"'))
    assert problems(path) == [
        "[jira] jql: must not contain ORDER BY (the connector orders pulls itself)"]


def test_keyword_construction_goes_through_the_same_model() -> None:
    from connectors.servicenow import ServiceNowConnector

    with pytest.raises(ValueError) as caught:
        ServiceNowConnector("https://sn.example.test", "u", "pw", table="In Cident")
    assert str(caught.value).startswith("table: String should match pattern")
    with pytest.raises(ValueError, match="plain http is only allowed to loopback"):
        ServiceNowConnector("http://sn.example.test", "u", "pw")
