"""The HTML audit report in a real browser: headless Chromium loads it, draws it, runs it.

Chromium (Debian's ``chromium``) is driven from its command line only: ``--dump-dom``
gives the page after its script ran, ``--screenshot`` a PNG, and
``--enable-logging=stderr`` every console message (an uncaught exception, a
resource the page's Content Security Policy refused, a ``console.error``) as a
``CONSOLE`` line. The report page logs nothing, so any such line is an error.
Without Chromium these tests skip, except under ``CI=true``, where ``.ci/run``
installs it and a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import sn_incident, store_of, sync
from typer.testing import CliRunner

from sync.cli.main import app

runner = CliRunner()
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: .ci/run installs it (apt-get install "
                        "chromium) before the tests")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(chromium: str, page: Path, *action: str, fragment: str = "",
           profile: Path) -> tuple[str, list[str]]:
    """Run headless Chromium on ``page``: (stdout, console lines)."""
    result = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
         "--hide-scrollbars", *action, page.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def visible_rows(dom: str) -> list[str]:
    """Classes of the findings rows the script left visible."""
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [kind for kind, attrs in re.findall(r'<tr class="([a-z_]+)"([^>]*)>', body)
            if "hidden" not in attrs]


@pytest.fixture
def report_page(sandboxes: Any, sync_config: Any, make_engine: Any, tmp_path: Path) -> Path:
    """A real audit over the sandboxes: one pair in step, one edited since the sync
    (title, urgency and the priority ServiceNow computes from it differ), an
    unsynced orphan and an open conflict."""
    servicenow, _ = sandboxes
    calm = sn_incident(servicenow, "Disk full on build agent")
    edited = sn_incident(servicenow, "VPN drops")
    config = sync_config()
    first = sync(make_engine, config)
    assert first.created == 2 and first.failed == 0, first.failures
    servicenow.update("incident", edited["sys_id"],
                      {"short_description": "VPN drops <hourly> & \"often\"", "urgency": "1"})
    sn_incident(servicenow, "Printer on fire")
    with store_of(config) as store:
        link = next(
            link for link in store.all_links() if link.id_on("servicenow") == calm["sys_id"]
        )
        with store.pair() as tx:
            tx.record_conflict(
                link.id,
                "assignee",
                base=None,
                values={"servicenow": "a@example.com", "jira": "b@example.com"},
                resolution="manual",
                policy="manual",
                at=datetime.now(UTC) - timedelta(minutes=5),
            )
    page = tmp_path / "audit.html"
    result = runner.invoke(app, ["audit", "-c", str(config), "-f", "html", "-o", str(page)])
    assert result.exit_code == 0, result.output
    assert "linked 2, in step 1, differing 1, orphans 1, open conflicts 1" in result.stdout
    return page


def test_the_report_page_loads_without_console_errors_and_shows_the_counts(
    chromium: str, report_page: Path, tmp_path: Path
) -> None:
    dom, console = browse(chromium, report_page, "--dump-dom", profile=tmp_path / "p1")
    assert console == []
    assert 'data-ready="1"' in dom  # the script ran to its end
    for key, value in [("linked", 2), ("in_step", 1), ("differing", 1), ("orphans", 1),
                       ("open_conflicts", 1)]:
        assert re.search(rf'id="card-{key}"><span class="n">{value}</span>', dom), key
    # in step; differs title, urgency, priority; orphan; conflict
    assert "showing 6 of 6 findings" in dom
    assert "<svg" in dom and "urgency: 1</title>" in dom and "title: 1</title>" in dom
    # Links to both records in their tools, values escaped.
    assert re.search(r'<a href="http://127\.0\.0\.1:\d+/incident\.do\?sys_id=[0-9a-f]{32}"', dom)
    assert re.search(r'<a href="http://127\.0\.0\.1:\d+/browse/OPS-\d+"', dom)
    assert "VPN drops &lt;hourly&gt; &amp; \"often\"" in dom

    shot = tmp_path / "audit.png"
    _, console = browse(chromium, report_page, f"--screenshot={shot}",
                        "--window-size=1280,1600", profile=tmp_path / "p2")
    assert console == []
    assert png_size(shot) == (1280, 1600)
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one


def test_a_filter_in_the_address_shows_only_matching_findings(
    chromium: str, report_page: Path, tmp_path: Path
) -> None:
    dom, console = browse(chromium, report_page, "--dump-dom", fragment="#kind=differs",
                          profile=tmp_path / "p")
    assert console == []
    assert visible_rows(dom) == ["differs"] * 3
    assert "showing 3 of 6 findings" in dom

    dom, console = browse(chromium, report_page, "--dump-dom", fragment="#q=printer",
                          profile=tmp_path / "p")
    assert console == [] and visible_rows(dom) == ["orphan"]


def test_a_sort_in_the_address_orders_the_findings(
    chromium: str, report_page: Path, tmp_path: Path
) -> None:
    dom, console = browse(chromium, report_page, "--dump-dom", fragment="#sort=-field",
                          profile=tmp_path / "p")
    assert console == []
    # The field column, descending (blank fields last); the heading says so.
    assert visible_rows(dom)[:4] == ["differs", "differs", "differs", "conflict"]
    fields = re.findall(r'<td>(urgency|title|priority|assignee)</td>', dom)
    assert fields == ["urgency", "title", "priority", "assignee"]
    assert re.search(r'data-key="field" aria-sort="descending"', dom)


def test_the_page_is_self_contained(report_page: Path) -> None:
    page = report_page.read_text(encoding="utf-8")
    # Links to the records are the only addresses; nothing is loaded from anywhere.
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<script[^>]*\bsrc=|@import|url\(", page)
    assert "default-src &#x27;none&#x27;" in page


def test_the_console_check_catches_a_broken_page(chromium: str, tmp_path: Path) -> None:
    # The guard on the tests above: a page whose script throws, or that loads an
    # outside resource against the report's policy, is reported.
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        "<img src=\"https://example.com/logo.png\"><script>missingFunction();</script>"
        "</body></html>", encoding="utf-8")
    _, console = browse(chromium, page, "--dump-dom", profile=tmp_path / "p")
    text = "\n".join(console)
    assert "missingFunction is not defined" in text
    assert "Content Security Policy" in text
