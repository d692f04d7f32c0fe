"""Fixtures of the results-store tests: an open, empty store per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from db import Store
from db.schema import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An open, migrated, empty store: SQLite in a fresh temporary file; PostgreSQL in the session's database
    (``pg_session_url``, migrated once by opening it, emptied before each test: creating and dropping a
    database per test would cost a second each). Tests of migrations and opening use ``store_url``, which is
    always a new, empty database."""
    if request.param == "sqlite":
        st = Store(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        url = request.getfixturevalue("pg_session_url")
        st = Store(url)
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        st._tx(lambda c: c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")), write=True,
               what="empty the test store")
    try:
        yield st
    finally:
        st.close()
