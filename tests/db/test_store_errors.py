"""Bad URLs, unreachable servers and passwords: one clear line, and the password never shown."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from db import Store, StoreError, default_store_url, mask_url
from db.errors import scrub
from db.urls import parse_store_url

SECRET = "s3cr3t-Pa55"


def _one_line_without_secret(exc: BaseException, secret: str = SECRET) -> str:
    message = str(exc)
    assert "\n" not in message, message
    assert secret not in message, message
    return message


@pytest.mark.parametrize("url, expected", [
    (f"mysql://user:{SECRET}@db.example/cre", "unsupported store URL 'mysql://user:***@db.example/cre'"),
    ("nonsense", "not a database URL: 'nonsense'; expected sqlite:///PATH or postgresql+psycopg://"),
    ("", "empty store URL"),
    ("sqlite://", "in-memory SQLite cannot hold a store"),
    ("sqlite:///:memory:", "in-memory SQLite cannot hold a store"),
    (f"postgresql+psycopg2://u:{SECRET}@h/db", "unsupported PostgreSQL driver 'psycopg2'"),
    (f"postgresql+psycopg://u:{SECRET}@h", "no database name in 'postgresql+psycopg://u:***@h'"),
    (f"postgresql://u:{SECRET}@h:port/db", "not a database URL: 'postgresql://u:***@h:port/db'"),
])
def test_bad_urls_are_one_clear_line(url: str, expected: str) -> None:
    with pytest.raises(StoreError) as info:
        Store(url)
    assert expected in _one_line_without_secret(info.value)


def test_postgres_scheme_aliases_mean_psycopg() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        assert parse_store_url(url).drivername == "postgresql+psycopg"


def test_relative_sqlite_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_store_url("sqlite:///rel/x.db").database == str(tmp_path / "rel" / "x.db")
    with Store("sqlite:///rel/x.db") as store:  # the folder is created
        assert store.url == f"sqlite:///{tmp_path / 'rel' / 'x.db'}"
    assert (tmp_path / "rel" / "x.db").is_file()


def test_unreachable_server_fails_fast_with_one_line() -> None:
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        Store(f"postgresql+psycopg://cre:{SECRET}@127.0.0.1:1/cre")
    assert time.monotonic() - start < 10
    message = _one_line_without_secret(info.value)
    assert message.startswith("cannot reach store postgresql+psycopg://cre:***@127.0.0.1:1/cre: ")
    assert "port 1 failed" in message


def test_driver_messages_are_scrubbed_of_the_password(pg_url: str) -> None:
    # The server's message names the (unknown) role, here spelled like the password: the driver's part of
    # the error must not repeat it (the URL part shows the user name, as masked URLs do).
    url = make_url(pg_url).set(username=SECRET, password=SECRET)
    with pytest.raises(StoreError) as info:
        Store(url.render_as_string(hide_password=False))
    prefix = f"cannot reach store {url.render_as_string(hide_password=True)}: "
    message = str(info.value)
    assert message.startswith(prefix) and "\n" not in message
    detail = message[len(prefix):]
    assert SECRET not in detail and 'role "***" does not exist' in detail


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot open store sqlite:///.*: unable to open database file"):
        Store(f"sqlite:///{tmp_path}")  # a folder, not a file
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the folder of store"):
        Store(f"sqlite:///{blocker}/sub/x.db")


def test_password_is_masked_in_url_repr_errors_and_logs(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    url = make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)  # trust auth accepts it
    caplog.set_level(logging.DEBUG)
    with Store(url) as store:
        assert SECRET not in store.url and ":***@" in store.url
        assert SECRET not in repr(store)
        with pytest.raises(StoreError) as info:
            store.counts("missing-sweep")
        assert "postgresql+psycopg://postgres:***@" in _one_line_without_secret(info.value)
        store.create_sweep("s")
        assert store.info()["url"] == store.url
    assert caplog.records, "the store logs its upgrade"
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_mask_url_works_on_anything() -> None:
    assert mask_url(f"postgresql+psycopg://bob:{SECRET}@host:5432/db") == "postgresql+psycopg://bob:***@host:5432/db"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert mask_url(f"weird+scheme://bob:{SECRET}@host:notaport/db") == "weird+scheme://bob:***@host:notaport/db"
    assert mask_url("not a url") == "not a url"
    assert scrub(f"failed for {SECRET}\nsecond line", (SECRET,)) == "failed for *** second line"


def test_default_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRE_STORE", raising=False)
    assert default_store_url() == f"sqlite:///{tmp_path / 'cre-results' / 'results.db'}"
    monkeypatch.setenv("CRE_STORE", "postgresql+psycopg://u@h/db")
    assert default_store_url() == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("CRE_STORE", "  ")
    assert default_store_url().endswith("/cre-results/results.db")
