"""``Store``: the one interface to the results store.

Every call runs one short transaction through ``Store._tx``, which commits,
rolls back, retries what is safe to retry (SQLite "database is locked",
PostgreSQL serialization failures and deadlocks, a dropped connection) and
turns every driver error into a one-line ``StoreError`` without the password.
Calls return frozen dataclasses (``db.types``), never ORM rows.

Concurrency model: many processes, each with its own ``Store`` (a ``Store``
pickles as its URL and reopens cheaply, without migrating, in a Ray worker;
one ``Store`` may be shared by the threads of a process). Trial ownership is
decided by ``claim`` inside a write transaction that holds the trial: on
SQLite ``BEGIN IMMEDIATE`` takes the database's write lock, on PostgreSQL
``SELECT ... FOR UPDATE`` locks the trial's row. Every later write of a worker
names its attempt and is refused with ``AttemptLost`` once that attempt is no
longer the trial's running one.

Timestamps are taken from this process's clock, in UTC: the hosts of a cluster
should run NTP (heartbeat timeouts are minutes, so seconds of skew are harmless).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Table, and_, bindparam, cast, create_engine, event, func, literal_column, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Engine

from db import migrate
from db.errors import AttemptLost, StoreError, first_line, mask_url, scrub
from db.schema import (
    CHECKPOINT_KINDS,
    UTCDateTime,
    EPOCH_METRICS,
    OPTIONAL_EPOCH_METRICS,
    TRIAL_SPEC_COLUMNS,
    TRIAL_STATUSES,
    AttemptORM,
    CheckpointORM,
    EpochORM,
    SweepORM,
    SweepTrialORM,
    TrialORM,
)
from db.types import Attempt, Checkpoint, EpochRow, Sweep, Trial, UpsertResult
from db.urls import parse_store_url

if TYPE_CHECKING:  # pragma: no cover
    from cre.spec import TrialSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

SWEEPS: Table = SweepORM.__table__  # type: ignore[assignment]
TRIALS: Table = TrialORM.__table__  # type: ignore[assignment]
SWEEP_TRIALS: Table = SweepTrialORM.__table__  # type: ignore[assignment]
ATTEMPTS: Table = AttemptORM.__table__  # type: ignore[assignment]
EPOCHS: Table = EpochORM.__table__  # type: ignore[assignment]
CHECKPOINTS: Table = CheckpointORM.__table__  # type: ignore[assignment]

_HEARTBEAT = (
    update(ATTEMPTS)
    .where(ATTEMPTS.c.trial_id == bindparam("t"), ATTEMPTS.c.attempt == bindparam("a"), ATTEMPTS.c.status == "running")
    .values(heartbeat_at=bindparam("now"))
)
"""Refresh a running attempt's heartbeat; 0 rows updated means the attempt is lost."""

CHUNK = 500
"""Rows per statement in bulk operations (well under SQLite's and PostgreSQL's bound-parameter limits)."""

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long SQLite waits for another process's write lock before reporting "database is locked"."""

RETRY_DEADLINE_S = 120.0
"""How long a transaction is retried on transient errors (locks, deadlocks, a dropped connection)."""

_PG_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _reopen(url: str) -> "Store":
    """Unpickling: open the same store again, without migrating (the pickler's store already did)."""
    return Store(url, upgrade=False)


class Store:
    """The results store at ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://USER:PASSWORD@HOST/DB``).

    Opening creates the schema or upgrades it to this code's newest Alembic
    revision (``upgrade=False``: refuse a store that is not already current).
    A URL that is not SQLite/PostgreSQL, a server that does not answer within
    ``connect_timeout`` seconds, or a store written by a newer cre-pipeline
    raise ``StoreError`` with one line that names the URL (password masked).
    """

    def __init__(self, url: str | URL, *, upgrade: bool = True, connect_timeout: float = 5.0) -> None:
        self._url = parse_store_url(url)
        self._masked = mask_url(self._url)
        self._secrets = tuple(s for s in (self._url.password,) if s)
        self.dialect: str = self._url.get_backend_name()
        self._pid = os.getpid()
        if not upgrade and self.dialect == "sqlite" and not self._url.database.startswith("file:"):
            if not Path(self._url.database).is_file():  # do not create an empty file just to refuse it
                raise StoreError(f"no SQLite store at {self._url.database} (create it with `cre-pipeline store "
                                 f"upgrade --store {self._masked}`)")
        self._engine = self._make_engine(connect_timeout)
        # Write transactions on SQLite begin IMMEDIATE (take the write lock up front: no lock upgrades, no
        # deadlock-style SQLITE_BUSY); the option is read by the "begin" listener of _make_engine.
        self._write_engine = self._engine.execution_options(cre_write=True)
        # Single statements run in autocommit mode (PostgreSQL: no BEGIN/COMMIT round trips; atomic anyway).
        self._autocommit_engine = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._upsert_epoch = _epoch_upsert(self.dialect)
        self._insert_trials = (self._insert(TRIALS).on_conflict_do_nothing(index_elements=["trial_id"])
                               .returning(TRIALS.c.trial_id))
        self._insert_links = self._insert(SWEEP_TRIALS).on_conflict_do_nothing(index_elements=["sweep_id", "trial_id"])
        self.schema_revision_before: str | None = None
        try:
            self._ensure_schema(upgrade)
        except BaseException:
            self._engine.dispose()
            raise

    # ------------------------------------------------------------ plumbing
    @property
    def url(self) -> str:
        """The store's URL with the password masked (safe to print)."""
        return self._masked

    def __repr__(self) -> str:
        return f"Store({self._masked!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles as its URL (password included: the copy must be able to connect), reopened without migrating.
        return (_reopen, (self._url.render_as_string(hide_password=False),))

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection. The store can still be used afterwards (it reconnects)."""
        self._engine.dispose()

    def _make_engine(self, connect_timeout: float) -> Engine:
        if self.dialect == "sqlite":
            path = Path(self._url.database or "")
            if not str(path).startswith("file:"):
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot create the folder of store {self._masked}: {exc.strerror or exc}"
                    ) from None
            engine = create_engine(
                self._url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
                pool_size=4,
                max_overflow=4,
            )

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
                # Let SQLAlchemy's "begin" listener below emit BEGIN (pysqlite's own handling defers it).
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                try:
                    cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
                    cur.execute("PRAGMA foreign_keys = ON")
                    if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        cur.execute("PRAGMA journal_mode = WAL")
                    # In WAL mode NORMAL syncs at checkpoints, not every commit: safe against process
                    # crashes; a power loss may lose the last commits (rows a resumed trial rewrites).
                    cur.execute("PRAGMA synchronous = NORMAL")
                finally:
                    cur.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("cre_write") else "BEGIN")

            return engine

        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in self._url.query:
            connect_args["connect_timeout"] = max(1, math.ceil(connect_timeout))
        if "application_name" not in self._url.query:
            connect_args["application_name"] = "cre-pipeline"
        # Small pool: a worker makes one call at a time (plus maybe a heartbeat thread); hundreds of workers
        # must fit in the server's max_connections.
        return create_engine(
            self._url, pool_pre_ping=True, pool_size=2, max_overflow=4, pool_recycle=1800, connect_args=connect_args
        )

    def _ensure_schema(self, upgrade: bool) -> None:
        def read(conn: Connection) -> str | None:
            return migrate.current_revision(conn)

        current = self._tx(read, write=False, what="open", retry_connect=False)
        migrate.check_known(current, self._masked)
        self.schema_revision_before = current
        head = migrate.head_revision()
        if current == head:
            return
        if not upgrade:
            state = "has no schema" if current is None else f"is at schema revision {current!r}"
            raise StoreError(
                f"store {self._masked} {state}, this code needs {head!r}; "
                f"run `cre-pipeline store upgrade --store URL` (or open it with upgrade=True)"
            )
        self._tx(lambda conn: migrate.upgrade_locked(conn, self._masked), write=True, what="schema upgrade",
                 retry_connect=False)
        log.info("store %s upgraded from %s to %s", self._masked, current or "empty", head)

    def _retryable(self, exc: sa_exc.DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        if self.dialect == "sqlite":
            text = str(exc.orig).lower()
            return isinstance(exc, sa_exc.OperationalError) and ("locked" in text or "busy" in text)
        return getattr(exc.orig, "sqlstate", None) in _PG_RETRY_SQLSTATES

    def _error(self, exc: BaseException, what: str) -> StoreError:
        orig = getattr(exc, "orig", None) or exc
        detail = scrub(first_line(orig), self._secrets) or type(orig).__name__
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated or _is_connect_error(exc):
            verb = "open" if self.dialect == "sqlite" else "reach"
            return StoreError(f"cannot {verb} store {self._masked}: {detail}")
        return StoreError(f"store {self._masked}: {what} failed: {detail}")

    def _tx(self, fn: Callable[[Connection], T], *, write: bool, what: str, retry_connect: bool = True,
            autocommit: bool = False) -> T:
        """Run ``fn(connection)`` in one transaction: commit, or roll back and translate the error.

        Transient errors retry the whole transaction with jittered exponential
        backoff for up to ``RETRY_DEADLINE_S``. ``AttemptLost``/``StoreError``/
        ``ValueError`` raised by ``fn`` roll back and pass through unchanged.
        """
        if os.getpid() != self._pid:  # forked: never share pooled connections with the parent
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        engine = self._autocommit_engine if autocommit else self._write_engine if write else self._engine
        deadline = time.monotonic() + RETRY_DEADLINE_S
        delay = 0.01
        while True:
            try:
                with engine.begin() as conn:
                    return fn(conn)
            except sa_exc.DBAPIError as exc:
                can_retry = self._retryable(exc) and (retry_connect or not _is_connect_error(exc))
                if not can_retry or time.monotonic() + delay > deadline:
                    raise self._error(exc, what) from None
                log.debug("store %s: %s: retrying after %s", self._masked, what,
                          scrub(first_line(exc.orig), self._secrets))
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 1.0)
            except sa_exc.SQLAlchemyError as exc:
                raise self._error(exc, what) from None

    def _insert(self, table: Table):  # noqa: ANN202 - dialect-specific Insert with on_conflict_*
        return (pg_dialect.insert(table) if self.dialect == "postgresql" else sqlite_dialect.insert(table))

    # -------------------------------------------------------------- sweeps
    def create_sweep(self, name: str, grid_text: str | None = None) -> Sweep:
        """Get or create the sweep ``name``; its grid_text is replaced when given and different."""
        _check_name(name)
        if grid_text is not None and not isinstance(grid_text, str):
            raise ValueError(f"grid_text must be a string, got {type(grid_text).__name__}")

        def work(conn: Connection) -> Sweep:
            self._sweep_id(conn, name, create=True, grid_text=grid_text)
            row = conn.execute(select(SWEEPS).where(SWEEPS.c.name == name)).one()
            return _sweep(row)

        return self._tx(work, write=True, what=f"create sweep {name!r}")

    def get_sweep(self, name: str) -> Sweep | None:
        """The sweep called ``name``, or None."""
        row = self._tx(lambda c: c.execute(select(SWEEPS).where(SWEEPS.c.name == name)).first(), write=False,
                       what="get sweep")
        return None if row is None else _sweep(row)

    def list_sweeps(self) -> list[Sweep]:
        """Every sweep, oldest first."""
        rows = self._tx(lambda c: c.execute(select(SWEEPS).order_by(SWEEPS.c.created_at, SWEEPS.c.id)).all(),
                        write=False, what="list sweeps")
        return [_sweep(r) for r in rows]

    def _sweep_id(self, conn: Connection, name: str, *, create: bool = False, grid_text: str | None = None) -> int:
        row = conn.execute(select(SWEEPS.c.id, SWEEPS.c.grid_text).where(SWEEPS.c.name == name)).first()
        now = utcnow()
        if row is None:
            if not create:
                raise StoreError(f"store {self._masked}: no sweep named {name!r}{self._known_sweeps(conn)}")
            conn.execute(
                self._insert(SWEEPS)
                .values(name=name, grid_text=grid_text or "", created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return conn.execute(select(SWEEPS.c.id).where(SWEEPS.c.name == name)).scalar_one()
        if grid_text is not None and grid_text != row.grid_text:
            conn.execute(update(SWEEPS).where(SWEEPS.c.id == row.id).values(grid_text=grid_text, updated_at=now))
        return row.id

    @staticmethod
    def _known_sweeps(conn: Connection) -> str:
        names = conn.execute(select(SWEEPS.c.name).order_by(SWEEPS.c.name).limit(11)).scalars().all()
        if not names:
            return " (the store has no sweeps)"
        more = ", ..." if len(names) > 10 else ""
        return f"; known: {', '.join(names[:10])}{more}"

    # -------------------------------------------------------------- trials
    def upsert_trials(self, sweep_name: str, specs: Sequence["TrialSpec"]) -> UpsertResult:
        """Add the trials of ``specs`` that are new (status pending) and link all of them to the sweep.

        One transaction, bulk statements; idempotent: trials that exist keep their
        status and results. The sweep is created (empty grid text) if needed.
        """
        from cre.spec import TrialSpec

        _check_name(sweep_name)
        by_id: dict[str, TrialSpec] = {}
        for spec in specs:
            if not isinstance(spec, TrialSpec):
                raise TypeError(f"upsert_trials takes TrialSpec objects, got {type(spec).__name__}")
            by_id.setdefault(spec.spec_id, spec)
        ids = list(by_id)

        def work(conn: Connection) -> UpsertResult:
            sweep_id = self._sweep_id(conn, sweep_name, create=True)
            existing: set[str] = set()
            linked: set[str] = set()
            for chunk in _chunks(ids):
                existing.update(conn.execute(select(TRIALS.c.trial_id).where(TRIALS.c.trial_id.in_(chunk))).scalars())
                linked.update(conn.execute(select(SWEEP_TRIALS.c.trial_id).where(
                    SWEEP_TRIALS.c.sweep_id == sweep_id, SWEEP_TRIALS.c.trial_id.in_(chunk))).scalars())
            now = utcnow()
            new = [_trial_values(i, by_id[i], now) for i in ids if i not in existing]
            links = [{"sweep_id": sweep_id, "trial_id": i} for i in ids if i not in linked]
            # executemany of one cached statement: SQLAlchemy's "insertmanyvalues" sends it as multi-row
            # INSERTs (a round trip per ~1000 rows). DO NOTHING + RETURNING: a concurrent upsert of the same
            # specs (another launch) may have inserted some meanwhile; count only the rows we inserted.
            added = 0
            if new:
                added = len(conn.execute(self._insert_trials, new).all())
            if links:
                conn.execute(self._insert_links, links)
            return UpsertResult(added=added, existing=len(ids) - added)

        return self._tx(work, write=True, what=f"upsert trials of sweep {sweep_name!r}")

    def get_trial(self, trial_id: str) -> Trial | None:
        """The trial, or None."""
        row = self._tx(lambda c: c.execute(select(TRIALS).where(TRIALS.c.trial_id == trial_id)).first(),
                       write=False, what="get trial")
        return None if row is None else _trial(row)

    def trials(self, sweep: str | None = None, status: str | Iterable[str] | None = None) -> list[Trial]:
        """Trials (of ``sweep``, with ``status`` -- one or several), oldest first."""
        statuses = _statuses(status)

        def work(conn: Connection) -> list[Any]:
            stmt = select(TRIALS)
            if sweep is not None:
                stmt = self._in_sweep(conn, stmt, sweep)
            if statuses is not None:
                stmt = stmt.where(TRIALS.c.status.in_(statuses))
            return conn.execute(stmt.order_by(TRIALS.c.created_at, TRIALS.c.trial_id)).all()

        return [_trial(r) for r in self._tx(work, write=False, what="list trials")]

    def _in_sweep(self, conn: Connection, stmt, sweep: str):  # noqa: ANN001, ANN202
        sweep_id = self._sweep_id(conn, sweep)
        return stmt.join(SWEEP_TRIALS, SWEEP_TRIALS.c.trial_id == TRIALS.c.trial_id).where(
            SWEEP_TRIALS.c.sweep_id == sweep_id
        )

    def counts(self, sweep: str | None = None) -> dict[str, int]:
        """Number of trials per status (every status present, 0 when none)."""

        def work(conn: Connection) -> list[Any]:
            stmt = select(TRIALS.c.status, func.count()).select_from(TRIALS)
            if sweep is not None:
                stmt = self._in_sweep(conn, stmt, sweep)
            return conn.execute(stmt.group_by(TRIALS.c.status)).all()

        out = dict.fromkeys(TRIAL_STATUSES, 0)
        for status, n in self._tx(work, write=False, what="count trials"):
            out[status] = int(n)
        return out

    def counts_by(self, sweep: str | None = None, by: Sequence[str] = ("model", "dataset")) -> list[dict[str, Any]]:
        """Trial counts grouped by spec columns and status: rows ``{<by...>, "status", "count"}``."""
        by = tuple(by)
        bad = [b for b in by if b not in TRIAL_SPEC_COLUMNS]
        if bad or not by:
            raise ValueError(f"counts_by: by must name columns among {', '.join(TRIAL_SPEC_COLUMNS)}, got {by!r}")
        cols = [TRIALS.c[b] for b in by]

        def work(conn: Connection) -> list[Any]:
            stmt = select(*cols, TRIALS.c.status, func.count().label("count")).select_from(TRIALS)
            if sweep is not None:
                stmt = self._in_sweep(conn, stmt, sweep)
            return conn.execute(stmt.group_by(*cols, TRIALS.c.status).order_by(*cols, TRIALS.c.status)).all()

        return [
            {**{b: row[i] for i, b in enumerate(by)}, "status": row.status, "count": int(row.count)}
            for row in self._tx(work, write=False, what="count trials")
        ]

    def reset_trials(self, trial_ids: Iterable[str], to: str = "pending",
                     from_status: Iterable[str] = ("failed", "interrupted")) -> list[str]:
        """Set trials whose status is in ``from_status`` to ``to`` (resume: failed/interrupted -> pending).

        Running trials are never touched (claims and attempts own them). Returns the ids changed.
        """
        if to not in TRIAL_STATUSES or to == "running":
            raise ValueError(f"reset_trials: to must be one of pending, completed, failed, interrupted, got {to!r}")
        sources = _statuses(from_status) or ()
        if "running" in sources:
            raise ValueError("reset_trials: running trials cannot be reset (interrupt their attempts first)")
        ids = list(dict.fromkeys(trial_ids))

        def work(conn: Connection) -> list[str]:
            changed: list[str] = []
            now = utcnow()
            for chunk in _chunks(ids):
                hit = conn.execute(
                    select(TRIALS.c.trial_id)
                    .where(TRIALS.c.trial_id.in_(chunk), TRIALS.c.status.in_(sources), TRIALS.c.status != to)
                    .with_for_update()
                ).scalars().all()
                if hit:
                    conn.execute(update(TRIALS).where(TRIALS.c.trial_id.in_(hit)).values(status=to, updated_at=now))
                    changed.extend(hit)
            return changed

        return self._tx(work, write=True, what="reset trials")

    # ------------------------------------------------------------ attempts
    def claim(self, trial_id: str, *, host: str, pid: int, start_epoch: int = 1,
              run_id: str | None = None) -> Attempt | None:
        """Start a new attempt of the trial, atomically; None when it is not this caller's to run.

        Succeeds (trial -> running, attempts + 1) when the trial is pending or
        interrupted, or when it is running under an attempt of the same
        ``run_id`` (a Ray retry inside one launch: that attempt is marked
        interrupted first). Returns None when the trial is completed or failed,
        or running under another run (or with no run_id). Of two racing
        processes exactly one wins. An unknown trial is a ``StoreError``.
        """
        _check_epoch("start_epoch", start_epoch)

        def work(conn: Connection) -> Attempt | None:
            row = conn.execute(
                select(TRIALS.c.status, TRIALS.c.attempts).where(TRIALS.c.trial_id == trial_id).with_for_update()
            ).first()
            if row is None:
                raise StoreError(f"store {self._masked}: cannot claim unknown trial {trial_id!r}")
            now = utcnow()
            if row.status == "running":
                running = conn.execute(
                    select(ATTEMPTS.c.attempt, ATTEMPTS.c.run_id)
                    .where(ATTEMPTS.c.trial_id == trial_id, ATTEMPTS.c.status == "running")
                    .with_for_update()
                ).all()
                if running and (run_id is None or any(a.run_id != run_id for a in running)):
                    return None
                # Same launch retrying (or an orphaned 'running' trial without a running attempt): take over.
                conn.execute(
                    update(ATTEMPTS)
                    .where(ATTEMPTS.c.trial_id == trial_id, ATTEMPTS.c.status == "running")
                    .values(status="interrupted", finished_at=now, error=f"superseded by a retry in run {run_id}")
                )
            elif row.status not in ("pending", "interrupted"):
                return None
            number = row.attempts + 1
            values = dict(trial_id=trial_id, attempt=number, start_epoch=start_epoch, host=str(host)[:255],
                          pid=int(pid), run_id=run_id, started_at=now, heartbeat_at=now, finished_at=None,
                          status="running", error=None, traceback=None)
            conn.execute(ATTEMPTS.insert().values(**values))
            conn.execute(
                update(TRIALS).where(TRIALS.c.trial_id == trial_id).values(status="running", attempts=number,
                                                                           updated_at=now)
            )
            return Attempt(**values)

        return self._tx(work, write=True, what=f"claim trial {trial_id[:12]}")

    def _touch(self, conn: Connection, trial_id: str, attempt: int, **values: Any) -> datetime:
        """Refresh the attempt's heartbeat (and set ``values``); AttemptLost unless it is running. Returns now."""
        now = values.pop("now", None) or utcnow()
        stmt = _HEARTBEAT if not values else _HEARTBEAT.values(**values)  # the hot path reuses one statement
        result = conn.execute(stmt, {"t": trial_id, "a": attempt, "now": now})
        if result.rowcount != 1:
            raise self._lost(conn, trial_id, attempt)
        return now

    def _lost(self, conn: Connection, trial_id: str, attempt: int) -> AttemptLost:
        row = conn.execute(
            select(ATTEMPTS.c.status, ATTEMPTS.c.error)
            .where(ATTEMPTS.c.trial_id == trial_id, ATTEMPTS.c.attempt == attempt)
        ).first()
        if row is None:
            return AttemptLost(f"trial {trial_id[:12]} has no attempt {attempt}")
        why = f" ({first_line(row.error)})" if row.error else ""
        return AttemptLost(f"attempt {attempt} of trial {trial_id[:12]} is no longer running: it is {row.status}{why}")

    def set_start_epoch(self, trial_id: str, attempt: int, start_epoch: int) -> None:
        """Record the first epoch this attempt trains (known once the worker has read its last checkpoint)."""
        _check_epoch("start_epoch", start_epoch)
        self._tx(lambda c: self._touch(c, trial_id, attempt, start_epoch=start_epoch), write=True,
                 what="set start epoch")

    def heartbeat(self, trial_id: str, attempt: int) -> None:
        """Say the attempt is alive; ``AttemptLost`` when it is no longer the trial's running attempt."""
        self._tx(lambda c: self._touch(c, trial_id, attempt), write=True, what="heartbeat")

    def record_epoch(self, trial_id: str, attempt: int, metrics: Mapping[str, Any]) -> None:
        """Write one epoch's metrics (replacing a row of the same epoch); refreshes the heartbeat.

        ``metrics`` maps ``epoch`` and the metric names (``EpochMetrics.to_dict()``
        fits; a dataclass instance is accepted too) to numbers; the four masked_*
        metrics may be missing or None. ``AttemptLost`` when the attempt is no
        longer running; ``ValueError`` for missing, unknown or non-finite values.
        """
        params = {"trial_id": trial_id, "attempt": attempt, **_epoch_values(metrics)}
        what = f"record epoch {params['epoch']} of trial {trial_id[:12]}"
        if self.dialect == "postgresql":
            # The hot path of every worker: one statement (heartbeat UPDATE ... RETURNING feeding the upsert),
            # one round trip, atomic without a transaction block. No row back: the attempt is not running.
            pg_params = {f"p_{k}": v for k, v in params.items()}
            pg_params["p_now"] = utcnow()
            written = self._tx(lambda c: c.execute(self._upsert_epoch, pg_params).first(), write=True, what=what,
                               autocommit=True)
            if written is None:
                raise self._tx(lambda c: self._lost(c, trial_id, attempt), write=False, what=what)
            return

        def work(conn: Connection) -> None:
            params["recorded_at"] = self._touch(conn, trial_id, attempt)
            conn.execute(self._upsert_epoch, params)

        self._tx(work, write=True, what=what)

    def record_checkpoint(self, trial_id: str, kind: str, epoch: int, uri: str, sha256: str, nbytes: int, *,
                          attempt: int | None = None) -> Checkpoint:
        """Point the trial's ``kind`` ("last"/"best") checkpoint at a file (replacing the previous row).

        With ``attempt``, refused (``AttemptLost``) unless that attempt is running.
        """
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind must be one of {', '.join(CHECKPOINT_KINDS)}, got {kind!r}")
        _check_epoch("epoch", epoch)
        if not (isinstance(sha256, str) and len(sha256) == 64 and all(ch in "0123456789abcdef" for ch in sha256)):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {sha256!r}")
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes must be an integer >= 0, got {nbytes!r}")
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"uri must be a non-empty string, got {uri!r}")

        def work(conn: Connection) -> Checkpoint:
            if attempt is not None:
                self._touch(conn, trial_id, attempt)
            elif conn.execute(select(TRIALS.c.trial_id).where(TRIALS.c.trial_id == trial_id)).first() is None:
                raise StoreError(f"store {self._masked}: cannot record a checkpoint of unknown trial {trial_id!r}")
            values = dict(trial_id=trial_id, kind=kind, epoch=int(epoch), uri=uri, sha256=sha256, bytes=nbytes,
                          recorded_at=utcnow())
            stmt = self._insert(CHECKPOINTS).values(**values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["trial_id", "kind"],
                set_={c: stmt.excluded[c] for c in ("epoch", "uri", "sha256", "bytes", "recorded_at")},
            ))
            return Checkpoint(**values)

        return self._tx(work, write=True, what=f"record {kind} checkpoint of trial {trial_id[:12]}")

    def finish_attempt(self, trial_id: str, attempt: int) -> Trial:
        """The attempt completed: attempt and trial -> completed; the best epoch is computed from its epochs."""

        def work(conn: Connection) -> Any:
            now = utcnow()
            self._touch(conn, trial_id, attempt, now=now, status="completed", finished_at=now)
            best = conn.execute(
                select(EPOCHS.c.epoch, EPOCHS.c.test_loss, EPOCHS.c.test_mse, EPOCHS.c.test_ce, EPOCHS.c.test_acc)
                .where(EPOCHS.c.trial_id == trial_id)
                .order_by(EPOCHS.c.test_loss, EPOCHS.c.epoch)
                .limit(1)
            ).first()
            conn.execute(update(TRIALS).where(TRIALS.c.trial_id == trial_id).values(
                status="completed", last_error=None, updated_at=now,
                best_epoch=best.epoch if best else None,
                best_test_loss=best.test_loss if best else None,
                best_test_mse=best.test_mse if best else None,
                best_test_ce=best.test_ce if best else None,
                best_test_acc=best.test_acc if best else None,
            ))
            return conn.execute(select(TRIALS).where(TRIALS.c.trial_id == trial_id)).one()

        return _trial(self._tx(work, write=True, what=f"finish trial {trial_id[:12]}"))

    def fail_attempt(self, trial_id: str, attempt: int, error: str, traceback: str | None = None) -> Trial:
        """The attempt raised: attempt and trial -> failed; the trial's last_error is the error's first line."""
        error = str(error) or "failed (no message)"

        def work(conn: Connection) -> Any:
            now = utcnow()
            self._touch(conn, trial_id, attempt, now=now, status="failed", finished_at=now, error=error,
                        traceback=traceback)
            conn.execute(update(TRIALS).where(TRIALS.c.trial_id == trial_id).values(
                status="failed", last_error=first_line(error)[:1000], updated_at=now))
            return conn.execute(select(TRIALS).where(TRIALS.c.trial_id == trial_id)).one()

        return _trial(self._tx(work, write=True, what=f"fail trial {trial_id[:12]}"))

    def interrupt_attempt(self, trial_id: str, attempt: int, reason: str) -> bool:
        """The attempt was stopped (Ctrl-C): attempt and trial -> interrupted.

        Idempotent: returns False (and changes nothing) when the attempt was no longer running.
        """

        def work(conn: Connection) -> bool:
            now = utcnow()
            result = conn.execute(
                update(ATTEMPTS)
                .where(ATTEMPTS.c.trial_id == trial_id, ATTEMPTS.c.attempt == attempt,
                       ATTEMPTS.c.status == "running")
                .values(status="interrupted", finished_at=now, error=str(reason))
            )
            if result.rowcount != 1:
                return False
            conn.execute(update(TRIALS).where(TRIALS.c.trial_id == trial_id, TRIALS.c.status == "running")
                         .values(status="interrupted", updated_at=now))
            return True

        return self._tx(work, write=True, what=f"interrupt trial {trial_id[:12]}")

    def _interrupt_where(self, conn: Connection, sweep: str | None, reason: str, *conditions: Any) -> list[str]:
        stmt = select(ATTEMPTS.c.trial_id, ATTEMPTS.c.attempt).where(ATTEMPTS.c.status == "running", *conditions)
        if sweep is not None:
            sweep_id = self._sweep_id(conn, sweep)
            stmt = stmt.join(SWEEP_TRIALS, and_(SWEEP_TRIALS.c.trial_id == ATTEMPTS.c.trial_id,
                                                SWEEP_TRIALS.c.sweep_id == sweep_id))
        # FOR UPDATE (PostgreSQL): rows changed meanwhile (a fresh heartbeat) are re-checked against the WHERE.
        hits = conn.execute(stmt.with_for_update(of=ATTEMPTS)).all()
        now = utcnow()
        for chunk in _chunks(hits):
            for trial_id, attempt in chunk:
                conn.execute(
                    update(ATTEMPTS)
                    .where(ATTEMPTS.c.trial_id == trial_id, ATTEMPTS.c.attempt == attempt,
                           ATTEMPTS.c.status == "running")
                    .values(status="interrupted", finished_at=now, error=reason)
                )
            conn.execute(update(TRIALS).where(TRIALS.c.trial_id.in_([h.trial_id for h in chunk]),
                                              TRIALS.c.status == "running")
                         .values(status="interrupted", updated_at=now))
        return [h.trial_id for h in hits]

    def interrupt_running(self, sweep: str | None = None, run_id: str | None = None,
                          reason: str = "interrupted by the driver") -> list[str]:
        """Mark every running attempt (of ``sweep``, of launch ``run_id``) and its trial interrupted.

        Returns the trial ids. Used by the driver on Ctrl-C and at the start of a
        launch that knows no other launch is running.
        """
        conditions = [] if run_id is None else [ATTEMPTS.c.run_id == run_id]
        return self._tx(lambda c: self._interrupt_where(c, sweep, str(reason), *conditions), write=True,
                        what="interrupt running attempts")

    def mark_stale(self, timeout_s: float, sweep: str | None = None) -> list[str]:
        """Running attempts without a heartbeat for ``timeout_s`` seconds -> interrupted (and their trials).

        Returns the trial ids, which may then be claimed again.
        """
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s < 0:
            raise ValueError(f"timeout_s must be a number >= 0, got {timeout_s!r}")
        cutoff = utcnow() - timedelta(seconds=float(timeout_s))
        reason = f"stale: no heartbeat for more than {timeout_s:g}s"
        return self._tx(lambda c: self._interrupt_where(c, sweep, reason, ATTEMPTS.c.heartbeat_at < cutoff),
                        write=True, what="mark stale attempts")

    # --------------------------------------------------------------- reads
    def epochs(self, trial_id: str) -> list[EpochRow]:
        """The trial's epoch rows, by epoch."""
        rows = self._tx(lambda c: c.execute(select(EPOCHS).where(EPOCHS.c.trial_id == trial_id)
                                            .order_by(EPOCHS.c.epoch)).all(), write=False, what="read epochs")
        return [EpochRow(**r._mapping) for r in rows]

    def checkpoints(self, trial_id: str) -> list[Checkpoint]:
        """The trial's checkpoint rows (best, last)."""
        rows = self._tx(lambda c: c.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.trial_id == trial_id)
                                            .order_by(CHECKPOINTS.c.kind)).all(), write=False,
                        what="read checkpoints")
        return [Checkpoint(**r._mapping) for r in rows]

    def get_checkpoint(self, trial_id: str, kind: str) -> Checkpoint | None:
        """The trial's ``kind`` checkpoint, or None."""
        if kind not in CHECKPOINT_KINDS:
            raise ValueError(f"checkpoint kind must be one of {', '.join(CHECKPOINT_KINDS)}, got {kind!r}")
        row = self._tx(lambda c: c.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.trial_id == trial_id,
                                                                     CHECKPOINTS.c.kind == kind)).first(),
                       write=False, what="read checkpoint")
        return None if row is None else Checkpoint(**row._mapping)

    def attempts(self, trial_id: str) -> list[Attempt]:
        """The trial's attempts, oldest first."""
        rows = self._tx(lambda c: c.execute(select(ATTEMPTS).where(ATTEMPTS.c.trial_id == trial_id)
                                            .order_by(ATTEMPTS.c.attempt)).all(), write=False, what="read attempts")
        return [Attempt(**r._mapping) for r in rows]

    def running_attempts(self, sweep: str | None = None) -> list[Attempt]:
        """Every running attempt (of ``sweep``), oldest first."""

        def work(conn: Connection) -> list[Any]:
            stmt = select(ATTEMPTS).where(ATTEMPTS.c.status == "running")
            if sweep is not None:
                sweep_id = self._sweep_id(conn, sweep)
                stmt = stmt.join(SWEEP_TRIALS, and_(SWEEP_TRIALS.c.trial_id == ATTEMPTS.c.trial_id,
                                                    SWEEP_TRIALS.c.sweep_id == sweep_id))
            return conn.execute(stmt.order_by(ATTEMPTS.c.started_at)).all()

        return [Attempt(**r._mapping) for r in self._tx(work, write=False, what="read running attempts")]

    def recent_failures(self, sweep: str | None = None, limit: int = 10) -> list[Trial]:
        """Failed trials, most recently failed first."""

        def work(conn: Connection) -> list[Any]:
            stmt = select(TRIALS).where(TRIALS.c.status == "failed")
            if sweep is not None:
                stmt = self._in_sweep(conn, stmt, sweep)
            return conn.execute(stmt.order_by(TRIALS.c.updated_at.desc(), TRIALS.c.trial_id).limit(limit)).all()

        return [_trial(r) for r in self._tx(work, write=False, what="read failures")]

    def throughput(self, sweep: str | None = None, window_s: float = 600.0) -> dict[str, Any]:
        """Progress in the last ``window_s`` seconds, for ETAs.

        Returns ``{"window_s", "completed", "epochs", "completed_per_s", "epochs_per_s"}``:
        trials completed and epoch rows written in the window, and their rates
        over the part of the window that saw activity (at least 1 s), so a run
        that started 1 minute ago is not diluted over 10.
        """
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        now = utcnow()
        since = now - timedelta(seconds=float(window_s))

        def work(conn: Connection) -> tuple[Any, Any]:
            ep = select(func.count(), func.min(EPOCHS.c.recorded_at)).select_from(EPOCHS).where(
                EPOCHS.c.recorded_at >= since)
            done = select(func.count(), func.min(ATTEMPTS.c.started_at)).select_from(ATTEMPTS).where(
                ATTEMPTS.c.status == "completed", ATTEMPTS.c.finished_at >= since)
            if sweep is not None:
                sweep_id = self._sweep_id(conn, sweep)
                ep = ep.join(SWEEP_TRIALS, and_(SWEEP_TRIALS.c.trial_id == EPOCHS.c.trial_id,
                                                SWEEP_TRIALS.c.sweep_id == sweep_id))
                done = done.join(SWEEP_TRIALS, and_(SWEEP_TRIALS.c.trial_id == ATTEMPTS.c.trial_id,
                                                    SWEEP_TRIALS.c.sweep_id == sweep_id))
            return conn.execute(ep).one(), conn.execute(done).one()

        (n_epochs, first_epoch), (n_done, first_start) = self._tx(work, write=False, what="read throughput")
        starts = [_aware(t) for t in (first_epoch, first_start) if t is not None]
        active = max(1.0, (now - max(min(starts), since)).total_seconds()) if starts else float(window_s)
        return {
            "window_s": float(window_s),
            "completed": int(n_done),
            "epochs": int(n_epochs),
            "completed_per_s": n_done / active,
            "epochs_per_s": n_epochs / active,
        }

    def info(self) -> dict[str, Any]:
        """What ``cre-pipeline store info`` prints: URL (masked), dialect, schema revision, rows per table."""

        def work(conn: Connection) -> dict[str, Any]:
            rows = {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                    for t in (SWEEPS, TRIALS, SWEEP_TRIALS, ATTEMPTS, EPOCHS, CHECKPOINTS)}
            return {"url": self._masked, "dialect": self.dialect, "revision": migrate.current_revision(conn),
                    "head": migrate.head_revision(), "rows": rows}

        return self._tx(work, write=False, what="read store info")


# ------------------------------------------------------------------ helpers
def _epoch_upsert(dialect: str) -> Any:
    """The statement ``record_epoch`` executes, built once per store.

    SQLite: ``INSERT ... ON CONFLICT (trial_id, epoch) DO UPDATE`` (run after the
    heartbeat UPDATE in the same transaction). PostgreSQL: the heartbeat and the
    upsert in one statement -- ``WITH a AS (UPDATE attempts ... WHERE status =
    'running' RETURNING trial_id) INSERT INTO epochs SELECT ... FROM a ON
    CONFLICT ... RETURNING epoch`` -- which writes nothing (and returns no row)
    when the attempt is not running.
    """
    data_columns = [c.name for c in EPOCHS.columns if c.name not in ("trial_id", "epoch")]
    if dialect == "sqlite":
        ins = sqlite_dialect.insert(EPOCHS)
        return ins.on_conflict_do_update(index_elements=["trial_id", "epoch"],
                                         set_={c: ins.excluded[c] for c in data_columns})
    touched = (
        update(ATTEMPTS)
        .where(ATTEMPTS.c.trial_id == bindparam("p_trial_id"), ATTEMPTS.c.attempt == bindparam("p_attempt"),
               ATTEMPTS.c.status == literal_column("'running'"))
        .values(heartbeat_at=bindparam("p_now", type_=UTCDateTime))
        .returning(ATTEMPTS.c.trial_id, ATTEMPTS.c.attempt, ATTEMPTS.c.heartbeat_at)
        .cte("touched")
    )
    source = {"trial_id": touched.c.trial_id, "attempt": touched.c.attempt, "recorded_at": touched.c.heartbeat_at}
    columns = [c.name for c in EPOCHS.columns]
    # Parameters are named p_<column>: a parameter named like a column of the UPDATE would become a SET
    # clause. Explicit casts: a NULL parameter in a SELECT list would otherwise be typed text.
    rows = select(*[source.get(name, cast(bindparam(f"p_{name}"), EPOCHS.c[name].type)) for name in columns])
    ins = pg_dialect.insert(EPOCHS).from_select(columns, rows)
    return ins.on_conflict_do_update(
        index_elements=["trial_id", "epoch"], set_={c: ins.excluded[c] for c in data_columns}
    ).returning(EPOCHS.c.epoch)


def _is_connect_error(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    name = type(orig).__name__
    text = str(orig).lower()
    if name == "OperationalError" and orig.__class__.__module__.startswith("psycopg"):
        return "connection" in text and ("failed" in text or "refused" in text or "timeout" in text)
    return "unable to open database file" in text


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValueError(f"sweep name must be a non-empty string of at most 200 characters, got {name!r}")


def _check_epoch(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")


def _statuses(status: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if status is None:
        return None
    wanted = (status,) if isinstance(status, str) else tuple(status)
    bad = [s for s in wanted if s not in TRIAL_STATUSES]
    if bad:
        raise ValueError(f"status must be among {', '.join(TRIAL_STATUSES)}, got {', '.join(map(repr, bad))}")
    return wanted


def _epoch_values(metrics: Mapping[str, Any] | Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(metrics) and not isinstance(metrics, type):
        metrics = dataclasses.asdict(metrics)
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping of metric names, got {type(metrics).__name__}")
    allowed = {"epoch", *EPOCH_METRICS, *OPTIONAL_EPOCH_METRICS}
    unknown = sorted(set(metrics) - allowed)
    missing = [m for m in ("epoch", *EPOCH_METRICS) if metrics.get(m) is None]
    if unknown or missing:
        parts = ([f"unknown {', '.join(unknown)}"] if unknown else []) + (
            [f"missing {', '.join(missing)}"] if missing else [])
        raise ValueError(f"epoch metrics: {'; '.join(parts)} (expected epoch, {', '.join(EPOCH_METRICS)} "
                         f"and optionally {', '.join(OPTIONAL_EPOCH_METRICS)})")
    _check_epoch("epoch", metrics["epoch"])
    out: dict[str, Any] = {"epoch": int(metrics["epoch"])}
    for name in (*EPOCH_METRICS, *OPTIONAL_EPOCH_METRICS):
        value = metrics.get(name)
        if value is None:
            out[name] = None
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"epoch metric {name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"epoch metric {name} must be finite, got {value!r}")
        out[name] = number
    return out


def _trial_values(trial_id: str, spec: "TrialSpec", now: datetime) -> dict[str, Any]:
    return {
        "trial_id": trial_id,
        "spec": spec.canonical_json(),
        **{c: getattr(spec, c) for c in TRIAL_SPEC_COLUMNS},
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }


def spec_from_json(text: str) -> "TrialSpec":
    """The TrialSpec stored as ``text``.

    A stored spec that this code no longer validates (say its model variant was
    renamed) is still returned, unvalidated, with a warning: reading a store
    must never fail because of old rows.
    """
    from cre.spec import TrialSpec

    data = json.loads(text)
    try:
        return TrialSpec.from_dict(data)
    except (TypeError, ValueError) as exc:
        log.warning("stored spec does not validate any more (%s); returning it unvalidated", exc)
        spec = object.__new__(TrialSpec)
        for f in dataclasses.fields(TrialSpec):
            default = f.default if f.default is not dataclasses.MISSING else None
            object.__setattr__(spec, f.name, data.get(f.name, default))
        return spec


def _trial(row: Any) -> Trial:
    m = row._mapping
    return Trial(spec=spec_from_json(m["spec"]), **{k: m[k] for k in _TRIAL_FIELDS})


_TRIAL_FIELDS = tuple(f.name for f in dataclasses.fields(Trial) if f.name != "spec")


def _sweep(row: Any) -> Sweep:
    return Sweep(name=row.name, grid_text=row.grid_text, created_at=row.created_at, updated_at=row.updated_at)

