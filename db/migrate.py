"""Alembic, run from code: the revisions ship inside the package (``db/migrations``), no alembic.ini needed.

``ensure_schema`` is what opening a ``Store`` does: nothing when the database
is at the head revision; otherwise, under a lock that serialises concurrent
openers (PostgreSQL advisory lock; SQLite ``BEGIN IMMEDIATE``), upgrade it. A
database stamped with a revision this code does not know (written by a newer
cre-pipeline) is refused with a clear error instead of being touched.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection

from db.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory (env.py, versions/)."""

_PG_LOCK_KEY = 0x6372_6501  # "cre" + 1: advisory lock id held while migrating


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged revisions; ``connection`` is handed to env.py."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this code knows."""
    head = _script().get_current_head()
    assert head is not None, "db/migrations/versions holds no revision"
    return head


def known_revisions() -> set[str]:
    """Every revision id shipped with this code."""
    return {rev.revision for rev in _script().walk_revisions()}


def current_revision(connection: Connection) -> str | None:
    """The revision the database is stamped with, or None for a database without the store's schema."""
    return MigrationContext.configure(connection).get_current_revision()


def check_known(revision: str | None, where: str) -> None:
    """Raise ``StoreError`` when ``revision`` was written by a newer cre-pipeline than this one."""
    if revision is not None and revision not in known_revisions():
        raise StoreError(
            f"store {where} has schema revision {revision!r}, newer than this cre-pipeline knows "
            f"(newest known: {head_revision()!r}); upgrade cre-pipeline to use it"
        )


def upgrade_locked(connection: Connection, where: str) -> str | None:
    """Upgrade to head inside the caller's (write) transaction; returns the revision found before.

    On PostgreSQL a transaction-scoped advisory lock makes concurrent openers wait
    for the first one to finish; on SQLite the caller's ``BEGIN IMMEDIATE`` does.
    The revision is read again under the lock, so only one process migrates.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
    before = current_revision(connection)
    check_known(before, where)
    if before != head_revision():
        try:
            command.upgrade(alembic_config(connection), "head")
        except CommandError as exc:
            raise StoreError(f"store {where}: schema upgrade failed: {exc}") from None
    return before
