"""Alembic: the shipped revisions build exactly the ORM schema; newer or missing schemas are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from db import Store, StoreError
from db.migrate import MIGRATIONS_DIR, alembic_config, head_revision
from db.schema import metadata
from db.urls import parse_store_url

TABLES = {"sweeps", "trials", "sweep_trials", "attempts", "epochs", "checkpoints"}


def _engine(url: str):  # noqa: ANN202
    return create_engine(parse_store_url(url))


def test_migration_from_empty_equals_orm_metadata(store_url: str) -> None:
    with Store(store_url) as store:
        assert store.schema_revision_before is None
        assert store.info()["revision"] == head_revision()
    engine = _engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            assert compare_metadata(context, metadata) == []
            assert set(inspect(conn).get_table_names()) == TABLES | {"alembic_version"}
            # the constraints the contract relies on exist in the database, not only in the ORM
            checks = {c["name"] for c in inspect(conn).get_check_constraints("trials")}
            assert "ck_trials_status" in checks
            assert inspect(conn).get_pk_constraint("epochs")["constrained_columns"] == ["trial_id", "epoch"]
    finally:
        engine.dispose()


def test_downgrade_to_empty_and_upgrade_again(store_url: str) -> None:
    Store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    with Store(store_url) as store:
        assert store.schema_revision_before is None and store.counts()["pending"] == 0


def test_reopening_a_current_store_does_not_migrate(store_url: str) -> None:
    Store(store_url).close()
    with Store(store_url, upgrade=False) as again:
        assert again.schema_revision_before == head_revision()


def test_a_store_from_a_newer_version_is_refused(store_url: str) -> None:
    Store(store_url).close()
    engine = _engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    finally:
        engine.dispose()
    for upgrade in (True, False):
        with pytest.raises(StoreError) as info:
            Store(store_url, upgrade=upgrade)
        message = str(info.value)
        assert "schema revision '9999_from_the_future', newer than this cre-pipeline knows" in message
        assert f"newest known: '{head_revision()}'" in message and "\n" not in message


def test_upgrade_false_refuses_an_empty_database(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="has no schema, this code needs .*cre-pipeline store upgrade"):
        Store(pg_url, upgrade=False)
    missing = tmp_path / "sub" / "none.db"
    with pytest.raises(StoreError, match="no SQLite store at .*none.db"):
        Store(f"sqlite:///{missing}", upgrade=False)
    assert not missing.exists() and not missing.parent.exists()  # refusing creates nothing


def test_revisions_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR == Path(__file__).resolve().parents[2] / "db" / "migrations"
    assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()
    revisions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert revisions[0] == "0001_initial.py"
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"migrations/versions/*.py"' in pyproject and '"migrations/*.mako"' in pyproject
