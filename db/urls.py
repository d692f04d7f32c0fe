"""Store URLs: the default, and the check that turns a user's URL into one the store can open."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from db.errors import StoreError, mask_url

ENV_VAR = "CRE_STORE"
"""Environment variable holding the store URL (used when no --store is given)."""

DEFAULT_SQLITE_PATH = Path("cre-results") / "results.db"
"""Where the default SQLite store lives, relative to the working directory."""

EXPECTED = "expected sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST[:PORT]/DATABASE"


def default_store_url() -> str:
    """``$CRE_STORE`` when set, else the SQLite file ``./cre-results/results.db``.

    The SQLite path is made absolute (against the current working directory) so
    the same URL still names the same file in a Ray worker, whose working
    directory differs. The folder is created when the store is opened.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / DEFAULT_SQLITE_PATH).resolve()}"


def parse_store_url(url: str | URL) -> URL:
    """Validate a store URL and normalise it; a URL the store cannot use is a one-line ``StoreError``.

    * ``sqlite:///relative/path.db`` becomes absolute (against the working directory);
      in-memory SQLite is refused (every process and connection would see another database);
    * ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://`` (the installed driver);
    * anything else (``mysql://``, ``nonsense``) is refused with what is expected.
    """
    if isinstance(url, URL):
        parsed = url
    else:
        text = str(url).strip()
        if not text:
            raise StoreError(f"empty store URL; {EXPECTED}")
        if text.startswith("postgres://"):
            text = "postgresql://" + text[len("postgres://"):]
        try:
            parsed = make_url(text)
        except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a non-numeric port
            raise StoreError(f"not a database URL: {mask_url(text)!r}; {EXPECTED}") from None
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise StoreError(f"unsupported SQLite driver in {mask_url(parsed)!r}; use sqlite:///PATH")
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise StoreError(f"in-memory SQLite cannot hold a store ({mask_url(parsed)!r}); {EXPECTED}")
        if not database.startswith("file:"):
            parsed = parsed.set(database=str(Path(database).expanduser().absolute()))
        return parsed
    if backend == "postgresql":
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            raise StoreError(
                f"unsupported PostgreSQL driver {driver!r} in {mask_url(parsed)!r}; use postgresql+psycopg://"
            )
        if not parsed.database:
            raise StoreError(f"no database name in {mask_url(parsed)!r}; {EXPECTED}")
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(f"unsupported store URL {mask_url(parsed)!r}: the store runs on SQLite or PostgreSQL; {EXPECTED}")


def engine_url(url: str | URL) -> URL:
    """Alias of ``parse_store_url`` for callers that only need the SQLAlchemy URL (Alembic's env.py)."""
    return parse_store_url(url)
