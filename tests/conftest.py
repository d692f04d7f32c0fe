"""Shared fixtures.

PostgreSQL: tests run against the server at ``$CRE_TEST_PG_ADMIN`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth). ``pg_url``
creates a uniquely named database for one test and drops it afterwards (WITH
FORCE, so leftover connections do not keep it alive). A server that does not
answer fails the test: these tests are never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("CRE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin():  # noqa: ANN202
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL for the tests is not reachable at {PG_ADMIN} (set CRE_TEST_PG_ADMIN): "
                    f"{str(exc).splitlines()[0]}")


def pg_database_url(name: str) -> str:
    """SQLAlchemy URL of database ``name`` on the test server (psycopg 3 driver)."""
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)


def _temporary_database() -> Iterator[str]:
    name = f"cre_test_{uuid.uuid4().hex[:16]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_database_url(name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database ``cre_test_<random>``; dropped after the test."""
    yield from _temporary_database()


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """Like ``pg_url``, but one database for the whole session (for fixtures that empty it per test)."""
    yield from _temporary_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite store file (not yet created) in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """An empty store URL, once per backend: SQLite (temporary file) and PostgreSQL (temporary database)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
