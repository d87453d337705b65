"""save_link against a model: any sequence of saves keeps every id in at most one link.

On SQLite and PostgreSQL: each example works in a connection of its own on a store
shared by the module, which also shows connections do not see each other's links.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.state import LinkConflict, LinkSide, StateStore

SERVICENOW_IDS = [f"sn{n}" for n in range(4)]
JIRA_KEYS = [f"OPS-{n}" for n in range(4)]
_examples = itertools.count()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SERVICENOW_IDS), st.sampled_from(JIRA_KEYS),
                          st.integers(min_value=0, max_value=99)), max_size=15))
def test_saves_match_a_model_where_two_claimants_are_refused(
    module_state_url: str, saves: list[tuple[str, str, int]]
) -> None:
    model: dict[int, tuple[str, str, str]] = {}  # link id -> (sn, key, version)
    connection = f"example-{next(_examples)}"
    with StateStore(module_state_url, connection=connection) as store:
        for sn, key, version in saves:
            claimants = {i for i, (s, k, _) in model.items() if s == sn or k == key}
            try:
                with store.pair() as tx:
                    link = tx.save_link(
                        {
                            "servicenow": LinkSide(
                                id=sn, display=sn, snapshot={"v": version}, version=str(version)
                            ),
                            "jira": LinkSide(
                                id=key, display=key, snapshot={"v": version}, version=str(version)
                            ),
                        },
                        hash=None,
                    )
            except LinkConflict:
                assert len(claimants) == 2
            else:
                assert len(claimants) <= 1
                if claimants:
                    assert link.id in claimants
                model[link.id] = (sn, key, str(version))

            stored = {
                link.id: (
                    link.id_on("servicenow"),
                    link.id_on("jira"),
                    link.version_on("servicenow") or "",
                )
                for link in store.all_links()
            }
            assert stored == model
            assert len({sn for sn, _, _ in stored.values()}) == len(stored)
            assert len({key for _, key, _ in stored.values()}) == len(stored)
