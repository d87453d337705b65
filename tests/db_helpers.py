"""Raw SQL on a state store's database, for tests that inspect or tamper with its rows.

Works on SQLite and PostgreSQL alike, through SQLAlchemy, so a test parametrized
over ``state_url`` can check what is really stored on either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect, text


def run_sql(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement, committed; its rows if it returns any."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: to show nothing was written."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            return {
                name: sorted((tuple(row) for row in conn.execute(text(f'select * from "{name}"'))),
                             key=repr)
                for name in names
            }
    finally:
        engine.dispose()
