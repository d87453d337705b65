"""A session that reads the environment once per origin merges exactly what requests
merges per request: proxies (with no_proxy by host, port, CIDR, and the request's own
no_proxy), the CA-bundle variables, the session's and the request's own settings."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.session_env import remember_environment

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"HTTP_PROXY": "http://proxy.example.test:3128", "HTTPS_PROXY": "http://tls.example.test:1"},
    {"http_proxy": "http://lower.example.test:8080", "HTTP_PROXY": "http://upper.example.test:1",
     "no_proxy": "127.0.0.1,.internal.example.test"},
    {"https_proxy": "http://proxy.example.test:3128", "NO_PROXY": "jira.example.test:8443"},
    {"all_proxy": "socks5://socks.example.test:1080", "no_proxy": "10.0.0.0/8"},
    {"http_proxy": "http://proxy.example.test:3128", "no_proxy": "*"},
    {"REQUESTS_CA_BUNDLE": "/etc/ssl/company.pem", "https_proxy": "http://p.example.test:1"},
    {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"},
    {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "/etc/ssl/curl.pem"},
]
URLS = [
    "http://127.0.0.1:8080/api/now/table/incident?sysparm_limit=1",
    "https://jira.example.test:8443/rest/api/3/search/jql?jql=x",
    "https://jira.example.test/rest/api/3/myself",
    "https://sn.internal.example.test/api/now/v1/batch",
    "http://10.1.2.3:9000/api/now/table/sys_user",
    "https://site.atlassian.net/rest/api/3/issue/bulk",
]
# What Session.request hands the merge: the request's proxies (never None), stream,
# verify and cert as the caller gave them.
CALLS: list[dict[str, Any]] = [
    {"proxies": {}, "stream": None, "verify": None, "cert": None},
    {"proxies": {}, "stream": True, "verify": True, "cert": None},
    {"proxies": {}, "stream": None, "verify": False, "cert": "/tmp/client.pem"},
    {"proxies": {}, "stream": None, "verify": "/etc/ssl/mine.pem", "cert": None},
    {"proxies": {"no_proxy": "jira.example.test"}, "stream": None, "verify": None, "cert": None},
    {"proxies": {"http": "http://mine.example.test:1"}, "stream": None, "verify": None,
     "cert": None},
]


def _session(**settings: Any) -> requests.Session:
    session = requests.Session()
    for name, value in settings.items():
        setattr(session, name, value)
    return session


def _merged(session: requests.Session, url: str, call: dict[str, Any]) -> dict[str, Any]:
    proxies = dict(call["proxies"])
    result = session.merge_environment_settings(url, proxies, call["stream"], call["verify"],
                                                call["cert"])
    return {"result": result, "proxies after": proxies}


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=range(len(ENVIRONMENTS)))
@pytest.mark.parametrize("session_settings", [
    {}, {"proxies": {"https": "http://session.example.test:1"}, "verify": "/etc/ssl/s.pem",
         "stream": True, "cert": ("/tmp/c.pem", "/tmp/k.pem")},
    {"trust_env": False},
], ids=["plain", "session-settings", "no-trust-env"])
def test_the_remembered_merge_is_requests_own_per_request(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str],
    session_settings: dict[str, Any],
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    remembering = _session(**session_settings)
    remember_environment(remembering)
    for _ in range(2):   # the second round comes from what was remembered
        for url in URLS:
            for call in CALLS:
                own = _session(**session_settings)
                assert _merged(remembering, url, call) == _merged(own, url, call), (url, call)


def test_a_session_opened_again_reads_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.setenv("https_proxy", "http://first.example.test:1")
    session = requests.Session()
    remember_environment(session)
    url = "https://site.atlassian.net/rest/api/3/myself"
    first = session.merge_environment_settings(url, {}, None, None, None)
    assert first["proxies"]["https"] == "http://first.example.test:1"
    monkeypatch.setenv("https_proxy", "http://second.example.test:1")
    # Within a run the first reading holds; the next run (a new install) reads anew.
    assert session.merge_environment_settings(url, {}, None, None, None) == first
    remember_environment(session)
    again = session.merge_environment_settings(url, {}, None, None, None)
    assert again["proxies"]["https"] == "http://second.example.test:1"
