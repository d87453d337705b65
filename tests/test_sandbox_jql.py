"""The Jira sandbox's JQL: parsing with Jira's strictness, and evaluation with its semantics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.sandbox import jql
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.jira_catalog import SearchCatalog
from connectors.sandbox.jira_site import account_id_for

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def search(sandbox: JiraSandbox, text: str, *, user: str = "admin@example.com",
           strict: bool = True) -> list[str]:
    """Keys matching ``text``, in the query's order (key order when it has none)."""
    bound = jql.bind(jql.parse(text), SearchCatalog(sandbox.state, user), strict=strict)
    found = [i for i in sandbox.state.issues.values() if bound.matches(i)]
    if bound.order:
        found = bound.sort(found, tiebreak=lambda i: i.id)
    else:
        found.sort(key=lambda i: i.id)
    return [i.key for i in found]


def error_of(text: str, sandbox: JiraSandbox | None = None) -> str:
    with pytest.raises(jql.JqlError) as caught:
        if sandbox is None:
            jql.parse(text)
        else:
            search(sandbox, text)
    return caught.value.message


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def site(clock: Clock) -> JiraSandbox:
    """Five known issues on an unstarted Cloud sandbox (JQL needs no HTTP), on the site
    an admin extended with components and a ServiceNow ID marker field."""
    sandbox = JiraSandbox(mode="cloud", clock=clock, fields="extended")
    alice = {"accountId": account_id_for("alice.smith@example.com")}
    bob = {"accountId": account_id_for("bob.jones@example.com")}
    rows: list[dict[str, Any]] = [
        {"summary": "VPN drops every 5 minutes", "labels": ["snow-a1", "network"],
         "assignee": alice, "priority": {"name": "High"}, "components": [{"name": "Network"}],
         "customfield_10100": "a1b2c3", "customfield_10004": {"value": "Moderate / Limited"}},
        {"summary": "Outlook crashes on PDF attachments", "labels": ["email"],
         "assignee": bob, "priority": {"name": "Low"},
         "description": "Reinstalling the add-ins did not help — café team in İzmir."},
        {"summary": "Printer jammed", "priority": {"name": "Medium"}},
        {"summary": 'Quote "and" backslash \\ in title', "labels": ["snow-d4"],
         "customfield_10100": "d4e5f6", "priority": {"name": "Highest"}},
        {"summary": "Database slow at month end", "assignee": alice,
         "priority": {"name": "Medium"}, "components": [{"name": "Database"}]},
    ]
    for offset, row in enumerate(rows):
        clock.now = START + timedelta(hours=offset)
        sandbox.create_issue(row)
    clock.now = START + timedelta(hours=10)
    sandbox.transition_issue("OPS-1", "Work in progress")
    sandbox.transition_issue("OPS-4", "Resolved")
    sandbox.add_comment("OPS-3", "Toner replaced; paper path cleared.")
    clock.now = START + timedelta(days=3)
    return sandbox


# ------------------------------------------------------------------ parsing


def test_and_binds_tighter_than_or() -> None:
    query = jql.parse("status = Open OR priority = High AND labels = x")
    assert isinstance(query.where, jql.Or)
    assert isinstance(query.where.parts[1], jql.And)


def test_parentheses_not_and_order_by() -> None:
    query = jql.parse("NOT (status = Open OR status = Pending) order by updated DESC, key")
    assert isinstance(query.where, jql.Not)
    assert query.order == (jql.SortKey("updated", False), jql.SortKey("key", None))
    assert not jql.parse("ORDER BY created").bounded


def test_keywords_are_case_insensitive(site: JiraSandbox) -> None:
    assert search(site, "Project = ops and Status In (open, 'Work in progress')") == [
        "OPS-1", "OPS-2", "OPS-3", "OPS-5"]


def test_quotes_and_escapes() -> None:
    clause = jql.parse(r'summary ~ "say \"hi\" \\ it\'s\tok\u00e9"').where
    assert isinstance(clause, jql.Clause)
    assert clause.operands[0].text == 'say "hi" \\ it\'s\toké'
    single = jql.parse(r"labels = 'it\'s'").where
    assert isinstance(single, jql.Clause) and single.operands[0].text == "it's"


def test_newlines_between_clauses_but_not_inside_strings() -> None:
    assert jql.parse("project = OPS\nAND\r\nstatus = Open").bounded
    message = error_of('summary ~ "two\nlines"')
    assert message.startswith("Error in the JQL Query:") and "(line 1, character 11)" in message
    escaped = jql.parse(r'summary ~ "two\nlines"').where
    assert isinstance(escaped, jql.Clause) and escaped.operands[0].text == "two\nlines"


@pytest.mark.parametrize(("text", "expected"), [
    ('summary ~ "open', "The quoted string 'open' has not been completed. "
                        "(line 1, character 11)"),
    (r'summary ~ "\q"', "The escape sequence '\\q' is illegal in a string. "
                        "(line 1, character 12)"),
    ("labels = order", "'order' is a reserved JQL word. You must surround it in quotation "
                       "marks to use it in a query. (line 1, character 10)"),
    ("summary ~ select", "'select' is a reserved JQL word."),
    ("assignee = bob@example.com", "The character '@' is a reserved JQL character."),
    ("labels = a+b", "The character '+' is a reserved JQL character."),
    ("project = OPS AND", "Expecting a field name but got '<EOF>'. (line 1, character 18)"),
    ("project OPS", "Expecting operator but got 'OPS'."),
    ("project = OPS status = Open", "Expecting either 'OR' or 'AND' but got 'status'."),
    ("status in (Open", "Expecting ')' but got '<EOF>'."),
    ("status is Open", "Expecting 'EMPTY' but got 'Open'."),
    ("(status = Open", "Expecting ')' but got '<EOF>'."),
    ("status ! Open", "The character '!' must be followed by '=' or '~'."),
])
def test_malformed_jql_is_rejected_with_jira_messages(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith("Error in the JQL Query: ")
    assert expected in message


def test_reserved_words_and_characters_are_fine_when_quoted(site: JiraSandbox) -> None:
    assert search(site, 'labels = "order" OR assignee = "alice.smith@example.com"') == [
        "OPS-1", "OPS-5"]


def test_hostile_values_cannot_widen_the_query(site: JiraSandbox) -> None:
    for hostile in ['x") OR project = OPS OR labels = ("', "x' OR project = OPS OR '",
                    "x\\\" OR project = OPS", "a\nOR project = OPS", "ORDER BY key"]:
        text = f"labels = {jql.quote(hostile)}"
        query = jql.parse(text)
        assert isinstance(query.where, jql.Clause) and query.order == ()
        assert query.where.operands[0].text == hostile
        assert search(site, text) == []


def test_unicode_values(site: JiraSandbox) -> None:
    assert search(site, 'text ~ "café İzmir"') == ["OPS-2"]
    assert search(site, 'summary ~ "\\"and\\" backslash"') == ["OPS-4"]


# ------------------------------------------------------------------ binding


def test_unknown_field_and_unsupported_operator(site: JiraSandbox) -> None:
    assert error_of("colour = red", site) == (
        "Field 'colour' does not exist or you do not have permission to view it.")
    assert error_of("summary = Printer", site) == (
        "The operator '=' is not supported by the 'summary' field.")
    assert error_of("status > Open", site) == (
        "The operator '>' is not supported by the 'status' field.")
    assert error_of("status = Sleeping", site) == (
        "The value 'Sleeping' does not exist for the field 'status'.")
    assert error_of('assignee = "nobody@example.com"', site) == (
        "The value 'nobody@example.com' does not exist for the field 'assignee'.")
    assert error_of("assignee = nextWeek()", site) == "Unable to find JQL function 'nextWeek()'."
    assert error_of('summary ~ ""', site) == (
        "The field 'summary' does not support searching for an empty string.")


def test_a_stock_site_knows_only_its_own_fields_and_components() -> None:
    stock = JiraSandbox(mode="cloud")
    stock.create_issue({"summary": "VPN down", "labels": ["category-network"],
                        "customfield_10004": {"value": "Moderate / Limited"}})
    for name in ("Subcategory", '"Assignment group"', '"ServiceNow ID"', "cf[10100]",
                 "customfield_10009"):
        assert error_of(f"{name} is EMPTY", stock) == (
            f"Field '{name.strip(chr(34))}' does not exist or you do not have permission to"
            " view it.")
    assert error_of("component = Network", stock) == (
        "The value 'Network' does not exist for the field 'component'.")
    assert search(stock, "labels = category-network AND Impact = 'Moderate / Limited'") == [
        "OPS-1"]
    assert search(stock, '"Pending reason" is EMPTY AND "Request participants" is EMPTY') == [
        "OPS-1"]


def test_every_invalid_value_is_reported_at_once(site: JiraSandbox) -> None:
    with pytest.raises(jql.JqlError) as caught:
        search(site, "key in (OPS-98, OPS-1, OPS-99) AND status = Sleeping")
    assert caught.value.messages == [
        "An issue with key 'OPS-98' does not exist for field 'key'.",
        "An issue with key 'OPS-99' does not exist for field 'key'.",
        "The value 'Sleeping' does not exist for the field 'status'."]


def test_key_clauses(site: JiraSandbox) -> None:
    assert search(site, "key in (OPS-2, ops-4)") == ["OPS-2", "OPS-4"]
    assert search(site, "issuekey = 10003") == ["OPS-3"]
    assert search(site, "key != OPS-1 AND key not in (OPS-2, OPS-3)") == ["OPS-4", "OPS-5"]
    assert error_of("key = OPS-99", site) == (
        "An issue with key 'OPS-99' does not exist for field 'key'.")
    assert error_of("key = banana", site) == "The issue key 'banana' for field 'key' is invalid."
    assert search(site, "key in (OPS-1, OPS-99)", strict=False) == ["OPS-1"]


def test_status_priority_component_and_category(site: JiraSandbox) -> None:
    assert search(site, 'status = "Work in progress"') == ["OPS-1"]
    assert search(site, "status != Open") == ["OPS-1", "OPS-4"]
    assert search(site, "statusCategory = Done") == ["OPS-4"]
    assert search(site, "statusCategory in (new, indeterminate)") == [
        "OPS-1", "OPS-2", "OPS-3", "OPS-5"]
    assert search(site, "priority in (Highest, High)") == ["OPS-1", "OPS-4"]
    assert search(site, "priority = 3") == ["OPS-3", "OPS-5"]
    assert search(site, "component = Network OR component = 10104") == ["OPS-1", "OPS-5"]
    assert search(site, "resolution = Unresolved") == ["OPS-1", "OPS-2", "OPS-3", "OPS-5"]
    assert search(site, "resolution = Done") == ["OPS-4"]
    assert search(site, "project = 10000 AND issuetype = Incident") == [
        "OPS-1", "OPS-2", "OPS-3", "OPS-4", "OPS-5"]
    assert error_of("project = NOPE", site) == (
        "The value 'NOPE' does not exist for the field 'project'.")


def test_users_by_account_id_email_and_current_user(site: JiraSandbox) -> None:
    alice = account_id_for("alice.smith@example.com")
    assert search(site, f"assignee = {alice}") == ["OPS-1", "OPS-5"]
    assert search(site, 'assignee = "bob.jones@example.com"') == ["OPS-2"]
    assert search(site, "assignee is EMPTY") == ["OPS-3", "OPS-4"]
    assert search(site, f"assignee != {alice}") == ["OPS-2"]  # != never matches EMPTY
    assert search(site, "assignee = currentUser()", user="bob.jones@example.com") == ["OPS-2"]
    assert search(site, "reporter = currentUser()") == ["OPS-1", "OPS-2", "OPS-3", "OPS-4",
                                                        "OPS-5"]


def test_users_on_data_center_are_names() -> None:
    sandbox = JiraSandbox(mode="datacenter")
    sandbox.create_issue({"summary": "x", "assignee": {"name": "chen.wei"}})
    assert search(sandbox, "assignee = chen.wei") == ["OPS-1"]
    assert search(sandbox, 'assignee = "chen.wei"') == ["OPS-1"]
    assert search(sandbox, "assignee = JIRAUSER10003") == ["OPS-1"]
    assert error_of(f"assignee = {account_id_for('chen.wei@example.com')}", sandbox).startswith(
        "The value ")


def test_labels(site: JiraSandbox) -> None:
    assert search(site, "labels = snow-a1") == ["OPS-1"]
    assert search(site, "labels in (email, snow-d4)") == ["OPS-2", "OPS-4"]
    assert search(site, "labels != network") == ["OPS-2", "OPS-4"]  # unlabelled excluded
    assert search(site, "labels is EMPTY") == ["OPS-3", "OPS-5"]
    assert search(site, "labels is not EMPTY AND NOT labels = email") == ["OPS-1", "OPS-4"]


def test_the_marker_custom_field_by_every_name(site: JiraSandbox) -> None:
    for clause in ('cf[10100] ~ "a1b2c3"', 'customfield_10100 = "a1b2c3"',
                   '"ServiceNow ID" ~ a1b2c3', "'servicenow id' = A1B2C3"):
        assert search(site, clause) == ["OPS-1"], clause
    assert search(site, "cf[10100] is EMPTY") == ["OPS-2", "OPS-3", "OPS-5"]
    assert search(site, 'cf[10004] = "Moderate / Limited"') == ["OPS-1"]
    assert search(site, '"Impact" is EMPTY') == ["OPS-2", "OPS-3", "OPS-4", "OPS-5"]


def test_text_search(site: JiraSandbox) -> None:
    assert search(site, 'summary ~ "vpn minutes"') == ["OPS-1"]  # every word, any order
    assert search(site, 'summary ~ "data*"') == ["OPS-5"]
    assert search(site, 'summary ~ "\\"drops every\\""') == ["OPS-1"]  # a phrase
    assert search(site, 'summary ~ "\\"every drops\\""') == []
    assert search(site, "text ~ toner") == ["OPS-3"]  # comments are text
    assert search(site, "comment ~ paper") == ["OPS-3"]
    assert search(site, "summary !~ printer") == ["OPS-1", "OPS-2", "OPS-4", "OPS-5"]


def test_dates_are_minute_precision(site: JiraSandbox) -> None:
    assert search(site, 'created >= "2026-03-02 11:00"') == ["OPS-3", "OPS-4", "OPS-5"]
    assert search(site, 'created > "2026/03/02 11:00"') == ["OPS-4", "OPS-5"]
    assert search(site, "created < 2026-03-02") == []
    assert search(site, 'created <= "2026-03-02 10:00"') == ["OPS-1", "OPS-2"]
    assert search(site, 'updated >= "2026-03-02 19:00"') == ["OPS-1", "OPS-3", "OPS-4"]
    assert search(site, "updated >= -3d") == ["OPS-1", "OPS-2", "OPS-3", "OPS-4", "OPS-5"]
    assert search(site, 'updated >= "-2d 15h"') == ["OPS-1", "OPS-3", "OPS-4"]
    assert search(site, "updated >= -2d") == []
    assert search(site, 'created >= "-2d 20h"') == ["OPS-5"]
    assert search(site, "resolutiondate is not EMPTY") == ["OPS-4"]
    message = error_of('updated >= "2026-03-02 11:00:00"', site)
    assert message.startswith("Date value '2026-03-02 11:00:00' for field 'updated' is "
                              "invalid. Valid formats include:")
    assert error_of('updated >= "yesterday"', site).startswith("Date value 'yesterday'")


def test_order_by(site: JiraSandbox) -> None:
    assert search(site, "project = OPS ORDER BY created DESC") == [
        "OPS-5", "OPS-4", "OPS-3", "OPS-2", "OPS-1"]
    assert search(site, "project = OPS ORDER BY priority DESC, key DESC") == [
        "OPS-4", "OPS-1", "OPS-5", "OPS-3", "OPS-2"]
    assert search(site, "project = OPS ORDER BY updated ASC") == [
        "OPS-2", "OPS-5", "OPS-1", "OPS-3", "OPS-4"]
    # Dates and priority sort descending unless told otherwise, as in Jira.
    assert search(site, "project = OPS ORDER BY updated") == [
        "OPS-1", "OPS-3", "OPS-4", "OPS-5", "OPS-2"]
    assert search(site, "project = OPS ORDER BY priority")[:2] == ["OPS-4", "OPS-1"]
    assert search(site, "ORDER BY assignee ASC")[-2:] == ["OPS-3", "OPS-4"]  # EMPTY last
    assert error_of("project = OPS ORDER BY colour", site).startswith("Field 'colour'")


# ------------------------------------------------------------------ properties


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_quote_round_trips_through_the_lexer(value: str) -> None:
    clause = jql.parse(f"labels = {jql.quote(value)} AND status = Open").where
    assert isinstance(clause, jql.And)
    first = clause.parts[0]
    assert isinstance(first, jql.Clause) and first.operands[0].text == value


STATUSES = ["Open", "Work in progress", "Pending", "Resolved"]
PRIORITIES = ["High", "Medium", "Low"]
LABELS = ["red", "green", "blue"]
PEOPLE = [None, "alice.smith@example.com", "bob.jones@example.com"]


@dataclass(frozen=True)
class FakeIssue:
    status: str
    priority: str
    labels: frozenset[str]
    assignee: str | None


issues_strategy = st.lists(st.builds(
    FakeIssue, st.sampled_from(STATUSES), st.sampled_from(PRIORITIES),
    st.frozensets(st.sampled_from(LABELS)), st.sampled_from(PEOPLE)), min_size=1, max_size=6)

Predicate = Callable[[FakeIssue], bool]


def _leaf() -> st.SearchStrategy[tuple[str, Predicate]]:
    def status(values: list[str], negate: bool) -> tuple[str, Predicate]:
        listed = ", ".join(jql.quote(v) for v in values)
        op = "not in" if negate else "in"
        return (f"status {op} ({listed})",
                lambda i: (i.status in values) != negate)

    def label(value: str, negate: bool) -> tuple[str, Predicate]:
        # Jira: != never matches an issue without labels.
        if negate:
            return f"labels != {value}", lambda i: bool(i.labels) and value not in i.labels
        return f"labels = {value}", lambda i: value in i.labels

    def assignee(value: str | None, negate: bool) -> tuple[str, Predicate]:
        if value is None:
            text = "assignee is not EMPTY" if negate else "assignee is EMPTY"
            return text, lambda i: (i.assignee is None) != negate
        op = "!=" if negate else "="
        return (f"assignee {op} {jql.quote(value)}",
                lambda i: i.assignee is not None and ((i.assignee == value) != negate))

    def priority(value: str) -> tuple[str, Predicate]:
        return f"priority = {value}", lambda i: i.priority == value

    return st.one_of(
        st.builds(status, st.lists(st.sampled_from(STATUSES), min_size=1, max_size=2),
                  st.booleans()),
        st.builds(label, st.sampled_from(LABELS), st.booleans()),
        st.builds(assignee, st.sampled_from(PEOPLE), st.booleans()),
        st.builds(priority, st.sampled_from(PRIORITIES)),
    )


def _combine(children: st.SearchStrategy[tuple[str, Predicate]]
             ) -> st.SearchStrategy[tuple[str, Predicate]]:
    def both(a: tuple[str, Predicate], b: tuple[str, Predicate], word: str
             ) -> tuple[str, Predicate]:
        if word == "AND":
            return f"({a[0]}) AND ({b[0]})", lambda i: a[1](i) and b[1](i)
        return f"({a[0]}) OR ({b[0]})", lambda i: a[1](i) or b[1](i)

    def negate(a: tuple[str, Predicate]) -> tuple[str, Predicate]:
        return f"NOT ({a[0]})", lambda i: not a[1](i)

    return st.one_of(st.builds(both, children, children, st.sampled_from(["AND", "OR"])),
                     st.builds(negate, children))


queries = st.recursive(_leaf(), _combine, max_leaves=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(issues_strategy, queries)
def test_evaluator_agrees_with_a_python_predicate(issues: list[FakeIssue],
                                                  query: tuple[str, Predicate]) -> None:
    sandbox = JiraSandbox(mode="cloud", clock=lambda: START)
    for issue in issues:
        fields: dict[str, Any] = {"summary": "generated", "labels": sorted(issue.labels),
                                  "priority": {"name": issue.priority}}
        if issue.assignee:
            fields["assignee"] = {"accountId": account_id_for(issue.assignee)}
        key = sandbox.create_issue(fields)
        sandbox.transition_issue(key, issue.status)
    text, predicate = query
    expected = [f"OPS-{n}" for n, issue in enumerate(issues, start=1) if predicate(issue)]
    assert search(sandbox, text) == expected, text
