"""The pure three-way field merge and the comment union (sync/merge.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.merge import comments_to_copy, merge_field

SIDES = ("servicenow", "jira")
BOTH_WAYS = {"servicenow": True, "jira": True}


def merge(
    current: dict[str, Any],
    base: dict[str, Any] | None,
    *,
    travels: dict[str, bool] | None = None,
    owner: str | None = None,
    policy: str = "newest",
    newest: str = "jira",
    agrees: dict[str, bool] | None = None,
):
    if agrees is None:
        agrees = {s: current["servicenow"] == current["jira"] for s in SIDES}
    return merge_field(
        "title", sides=SIDES, current=current, base=base, travels_to=travels or BOTH_WAYS,
        agrees=agrees, owner=owner, policy=policy, newest=newest,
    )


def test_unchanged_on_both_sides_writes_nothing() -> None:
    result = merge({"servicenow": "a", "jira": "a"}, {"servicenow": "a", "jira": "a"})
    assert result.source is None and result.conflict is None


def test_a_change_on_one_side_is_taken_from_that_side() -> None:
    result = merge({"servicenow": "new", "jira": "old"}, {"servicenow": "old", "jira": "old"})
    assert (result.source, result.value, result.conflict) == ("servicenow", "new", None)
    result = merge({"servicenow": "old", "jira": "new"}, {"servicenow": "old", "jira": "old"})
    assert (result.source, result.value) == ("jira", "new")


def test_per_side_bases_keep_a_lossy_value_from_bouncing() -> None:
    # ServiceNow holds the long title, Jira the truncated one we wrote: both as synced.
    long, short = "x" * 300, "x" * 255
    result = merge({"servicenow": long, "jira": short}, {"servicenow": long, "jira": short},
                   agrees={"servicenow": True, "jira": False})
    assert result.source is None


def test_a_change_the_other_side_already_holds_writes_nothing() -> None:
    result = merge({"servicenow": "same", "jira": "same"}, {"servicenow": "old", "jira": "same"})
    assert result.source is None and result.conflict is None


def test_both_changed_to_equal_values_is_not_a_conflict() -> None:
    result = merge({"servicenow": "z", "jira": "z"}, {"servicenow": "a", "jira": "a"})
    assert result.source is None and result.conflict is None


def test_conflict_newest_policy_takes_the_side_updated_last() -> None:
    result = merge({"servicenow": "s", "jira": "j"}, {"servicenow": "a", "jira": "a"},
                   policy="newest", newest="servicenow")
    assert result.source == "servicenow" and result.value == "s"
    assert result.conflict is not None
    assert result.conflict.resolution == "servicenow" and result.conflict.policy == "newest"
    assert dict(result.conflict.values) == {"servicenow": "s", "jira": "j"}
    assert dict(result.conflict.base) == {"servicenow": "a", "jira": "a"}


def test_conflict_side_policy_takes_that_side() -> None:
    for side in SIDES:
        result = merge({"servicenow": "s", "jira": "j"}, {"servicenow": "a", "jira": "a"},
                       policy=side, newest="servicenow" if side == "jira" else "jira")
        assert result.source == side
        assert result.conflict is not None and result.conflict.resolution == side


def test_conflict_manual_policy_writes_nothing_but_is_recorded() -> None:
    result = merge({"servicenow": "s", "jira": "j"}, {"servicenow": "a", "jira": "a"},
                   policy="manual")
    assert result.source is None
    assert result.conflict is not None and result.conflict.resolution == "manual"


def test_the_fields_owner_settles_a_conflict_before_the_policy() -> None:
    result = merge({"servicenow": "s", "jira": "j"}, {"servicenow": "a", "jira": "a"},
                   owner="jira", policy="servicenow")
    assert result.source == "jira"
    assert result.conflict is not None and result.conflict.policy == "owner"


def test_a_change_that_cannot_travel_is_ignored() -> None:
    # The field only goes servicenow -> jira: a Jira-side edit stays where it is.
    result = merge({"servicenow": "a", "jira": "edited"}, {"servicenow": "a", "jira": "a"},
                   travels={"servicenow": False, "jira": True})
    assert result.source is None and result.conflict is None


def test_without_a_base_values_that_disagree_are_a_conflict() -> None:
    result = merge({"servicenow": "s", "jira": "j"}, None, policy="servicenow")
    assert result.source == "servicenow" and result.conflict is not None
    assert dict(result.conflict.base) == {"servicenow": None, "jira": None}


def test_without_a_base_values_that_agree_write_nothing() -> None:
    result = merge({"servicenow": "x" * 300, "jira": "x" * 255}, None,
                   agrees={"servicenow": True, "jira": False})
    assert result.source is None and result.conflict is None


values = st.sampled_from(["a", "b", "c", None])


@settings(max_examples=150, deadline=None)
@given(base_sn=values, base_j=values, cur_sn=values, cur_j=values,
       policy=st.sampled_from(["newest", "manual", "servicenow", "jira"]),
       newest=st.sampled_from(SIDES))
def test_merge_properties(base_sn: Any, base_j: Any, cur_sn: Any, cur_j: Any, policy: str,
                          newest: str) -> None:
    current = {"servicenow": cur_sn, "jira": cur_j}
    base = {"servicenow": base_sn, "jira": base_j}
    result = merge(current, base, policy=policy, newest=newest)
    moved = {s for s in SIDES if current[s] != base[s]}
    # A side's value wins only when it moved; the value written is that side's.
    if result.source is not None:
        assert result.source in moved
        assert result.value == current[result.source]
        assert cur_sn != cur_j
    # A conflict exactly when both moved to different values; it is always reported.
    assert (result.conflict is not None) == (moved == set(SIDES) and cur_sn != cur_j)
    # Merging again after the write (both sides now hold the value) changes nothing.
    if result.source is not None:
        after = {s: result.value for s in SIDES}
        again = merge(after, after, policy=policy, newest=newest)
        assert again.source is None and again.conflict is None


@dataclass(frozen=True)
class C:
    id: str


def test_comment_union_copies_only_what_the_other_side_lacks() -> None:
    comments = {"servicenow": [C("s1"), C("s2")], "jira": [C("j1"), C("j-copy-of-s1")]}
    known = {"servicenow": {"s1"}, "jira": {"j-copy-of-s1"}}
    copies = comments_to_copy(comments, known)
    assert [(side, c.id) for side, c in copies] == [("servicenow", "s2"), ("jira", "j1")]


def test_comment_union_respects_the_direction() -> None:
    comments = {"servicenow": [C("s1")], "jira": [C("j1")]}
    copies = comments_to_copy(comments, {}, may_copy=lambda src, dst: src == "servicenow")
    assert [(side, c.id) for side, c in copies] == [("servicenow", "s1")]


def test_comment_union_of_fully_mapped_comments_is_empty() -> None:
    comments = {"servicenow": [C("s1"), C("s2")], "jira": [C("j1"), C("j2")]}
    known = {"servicenow": {"s1", "s2"}, "jira": {"j1", "j2"}}
    assert comments_to_copy(comments, known) == []
