"""The neutral incident: validation names field and value, the ITIL matrix, the content hash."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from mappings.model import (
    MODEL_ENUMS,
    Comment,
    Impact,
    Incident,
    Priority,
    Status,
    Urgency,
    Visibility,
    canonical,
    construct_trusted,
    content_hash,
    copy_updated,
    describe_error,
    itil_priority,
    revalidates,
)

# The ServiceNow default lookup, written out cell by cell (docs/vendor-notes.md).
MATRIX = [
    (1, 1, 1), (1, 2, 2), (1, 3, 3),
    (2, 1, 2), (2, 2, 3), (2, 3, 4),
    (3, 1, 3), (3, 2, 4), (3, 3, 5),
]  # fmt: skip


@pytest.mark.parametrize(("impact", "urgency", "priority"), MATRIX)
def test_priority_matrix_every_cell(impact: int, urgency: int, priority: int) -> None:
    assert itil_priority(impact, urgency) == Priority(priority)
    assert itil_priority(Impact(impact), Urgency(urgency)) == priority


def test_priority_matrix_rejects_values_outside_it() -> None:
    with pytest.raises(ValueError, match="impact=4"):
        itil_priority(4, 1)


def test_effective_priority_is_the_matrix_unless_set() -> None:
    incident = Incident(impact=1, urgency=1)
    assert incident.effective_priority is Priority.CRITICAL
    incident.priority = Priority.PLANNING
    assert incident.effective_priority is Priority.PLANNING


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "done"), ("impact", 4), ("urgency", 0), ("priority", 6), ("escalation", 7),
     ("assignee", "not-an-email"), ("caller", "@example.com"), ("labels", "one")],
)
def test_invalid_value_names_the_field_and_the_value(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Incident(**{field: value})
    lines = describe_error(caught.value)
    assert any(line.startswith(field) and repr(value) in line for line in lines), lines


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="severity"):
        Incident(severity=1)  # type: ignore[call-arg]


def test_emails_are_normalised_and_empty_people_are_none() -> None:
    incident = Incident(assignee="Alice.Smith@Example.com", caller="")
    assert incident.assignee == "alice.smith@example.com"
    assert incident.caller is None


def test_naive_datetimes_are_taken_as_utc() -> None:
    incident = Incident(opened_at=datetime(2026, 1, 1, 12, 0))
    assert incident.opened_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_comment_visibility_fails_closed() -> None:
    comment = Comment(id="jira:1", created=datetime(2026, 1, 1, tzinfo=UTC))
    assert comment.visibility is Visibility.INTERNAL


def test_status_open_states() -> None:
    assert {s for s in Status if s.is_open} == {Status.NEW, Status.IN_PROGRESS, Status.ON_HOLD}


comments = st.lists(
    st.builds(
        Comment,
        id=st.text(min_size=1, max_size=12),
        author=st.text(max_size=20),
        body=st.text(max_size=80),
        created=st.datetimes(timezones=st.just(UTC)),
        visibility=st.sampled_from(Visibility),
    ),
    max_size=5,
    unique_by=lambda c: c.id,
)
incidents = st.builds(
    Incident,
    title=st.text(max_size=60),
    description=st.text(max_size=200),
    status=st.sampled_from(Status),
    impact=st.sampled_from(Impact),
    urgency=st.sampled_from(Urgency),
    labels=st.lists(st.text(min_size=1, max_size=10), max_size=5),
    updated_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    comments=comments,
    custom=st.dictionaries(st.text(min_size=1, max_size=8), st.integers() | st.text(max_size=8),
                           max_size=3),
)


@given(incidents, st.randoms())
def test_hash_ignores_comment_and_label_order(incident: Incident, rnd: object) -> None:
    shuffled = incident.model_copy(deep=True)
    shuffled.comments = list(reversed(incident.comments))
    shuffled.labels = list(reversed(incident.labels))
    assert content_hash(shuffled) == content_hash(incident)


@given(incidents)
def test_hash_ignores_updated_at(incident: Incident) -> None:
    moved = incident.model_copy(update={"updated_at": datetime(2030, 1, 1, tzinfo=UTC)})
    assert content_hash(moved) == content_hash(incident)


@given(incidents, st.text(min_size=1, max_size=20))
def test_hash_changes_when_content_changes(incident: Incident, suffix: str) -> None:
    edited = incident.model_copy(update={"title": incident.title + suffix})
    assert content_hash(edited) != content_hash(incident)


@given(incidents)
def test_canonical_form_round_trips_through_the_model(incident: Incident) -> None:
    data = canonical(incident)
    again = Incident.model_validate(data)
    assert content_hash(again) == content_hash(incident)


def test_hash_is_pinned_so_stored_snapshot_hashes_keep_their_meaning() -> None:
    incident = Incident(
        title="VPN drops", opened_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1)
    )
    # A change here silently invalidates every hash in existing state stores:
    # bump the state schema version if it is ever intended.
    assert content_hash(incident) == (
        "449b010d73aa27d569fa6d0cd203366ba9357ef2b1f320e3fdd52cef2e1065ab"
    )


def _instance(model: BaseModel) -> tuple[object, ...]:
    """Everything pydantic keeps on an instance (what equality, dumps and copies read)."""
    return (type(model), model.__dict__, list(model.__dict__), model.model_fields_set,
            model.__pydantic_extra__, model.__pydantic_private__)


@given(comments.filter(bool))
def test_construct_trusted_builds_what_model_construct_builds(held: list[Comment]) -> None:
    for comment in held:
        values = dict(comment.__dict__)
        built = construct_trusted(Comment, dict(values))
        assert _instance(built) == _instance(Comment.model_construct(**values))
        # A partial set of values takes pydantic's own path (defaults filled in).
        partial = {"id": comment.id, "created": comment.created}
        assert _instance(construct_trusted(Comment, partial)) == _instance(
            Comment.model_construct(**partial))


@given(incidents, st.sets(st.sampled_from(["title", "labels", "escalation", "comments"])))
def test_copy_updated_copies_as_model_copy_does(incident: Incident, names: set[str]) -> None:
    update = {name: incident.__dict__[name] for name in sorted(names)}
    copied = copy_updated(incident, update)
    assert _instance(copied) == _instance(incident.model_copy(update=update))
    assert copied is not incident and copied.__dict__ is not incident.__dict__
    assert copied.model_fields_set is not incident.model_fields_set



# enum's own way of reading a member's value, which the model's enums replace.
ENUM_VALUE = enum.Enum.__dict__["value"]


def test_the_model_enums_values_read_as_enum_itself_reads_them() -> None:
    import mappings.model as model
    defined = {kind for kind in vars(model).values() if isinstance(kind, type)
               and issubclass(kind, enum.Enum) and kind.__module__ == model.__name__}
    assert set(MODEL_ENUMS) == defined   # an enum added later reads the same way
    for cls in MODEL_ENUMS:
        for member in cls:
            expected = ENUM_VALUE.__get__(member, cls)
            assert member.value is expected
            assert cls(member.value) is member


@given(status=st.sampled_from(Status), impact=st.sampled_from(Impact),
       urgency=st.sampled_from(Urgency), priority=st.none() | st.sampled_from(Priority),
       visibility=st.sampled_from(Visibility))
def test_dumps_carry_the_members_values(status: Status, impact: Impact, urgency: Urgency,
                                        priority: Priority | None,
                                        visibility: Visibility) -> None:
    comment = Comment(id="jira:1", created=datetime(2026, 1, 2, tzinfo=UTC),
                      visibility=visibility)
    incident = Incident(status=status, impact=impact, urgency=urgency, priority=priority,
                        comments=[comment])
    dumped = incident.model_dump(mode="json")
    assert (dumped["status"], dumped["impact"], dumped["urgency"], dumped["priority"]) == (
        ENUM_VALUE.__get__(status, Status), ENUM_VALUE.__get__(impact, Impact),
        ENUM_VALUE.__get__(urgency, Urgency),
        None if priority is None else ENUM_VALUE.__get__(priority, Priority))
    assert dumped["comments"][0]["visibility"] == ENUM_VALUE.__get__(visibility, Visibility)
    assert Incident.model_validate_json(incident.model_dump_json()) == incident


# Values as a vendor's record may hand them to the model: addresses with spaces, case
# and stray "@"s, times naive or at any offset, comments, custom values of any JSON
# kind (and a time or a tuple, which the dump turns into JSON).
_addresses = st.one_of(
    st.none(), st.just(""), st.emails(),
    st.builds(lambda pad, local, at, domain, end: f"{pad}{local}{at}{domain}{end}",
              st.sampled_from(["", " ", "\t", "  "]), st.sampled_from(["", "a", "Ab.C", " "]),
              st.sampled_from(["@", "@@", ""]), st.sampled_from(["", "x.org", "X.ORG ", "@"]),
              st.sampled_from(["", " ", "\n"])))
_times = st.one_of(
    st.none(), st.datetimes(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                            timezone(-timedelta(hours=8))])))
_custom = st.dictionaries(
    st.sampled_from(["hold_reason", "sla", "x"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=5), st.lists(st.integers(), max_size=3),
              st.tuples(st.integers()), st.datetimes(timezones=st.just(UTC)),
              st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
    max_size=3)
_comments = st.lists(st.builds(
    lambda n, body, created, public: {"id": f"jira:{n}", "body": body, "created": created,
                                      "visibility": "public" if public else "internal"},
    st.integers(1, 9), st.text(max_size=10), st.datetimes(), st.booleans()), max_size=2)


@given(assignee=_addresses, caller=_addresses, opened=_times, resolved=_times,
       custom=_custom, comments=_comments, labels=st.lists(st.text(max_size=4), max_size=3),
       status=st.sampled_from(Status), priority=st.none() | st.sampled_from(Priority))
def test_revalidates_says_whether_the_dump_validates_back_to_itself(
    assignee: str | None, caller: str | None, opened: datetime | None,
    resolved: datetime | None, custom: dict[str, Any], comments: list[dict[str, Any]],
    labels: list[str], status: Status, priority: Priority | None,
) -> None:
    try:
        incident = Incident.model_validate({
            "assignee": assignee, "caller": caller, "opened_at": opened,
            "resolved_at": resolved, "custom": custom, "comments": comments,
            "labels": labels, "status": status, "priority": priority})
    except ValidationError:
        return   # refused at once: never an incident to validate again
    dumped = incident.model_dump(mode="json")
    if revalidates(incident):
        assert Incident.model_validate(dumped).model_dump(mode="json") == dumped
    else:
        with pytest.raises(ValidationError):
            Incident.model_validate(dumped)


def test_an_address_only_the_strip_made_start_or_end_with_at_does_not_revalidate() -> None:
    for address in (" @example.com", "someone@ \t"):
        incident = Incident(caller=address)
        assert not revalidates(incident)
        with pytest.raises(ValidationError, match="not an email address"):
            Incident.model_validate(incident.model_dump(mode="json"))
    assert revalidates(Incident(caller=" Someone@Example.com ", assignee=None))
