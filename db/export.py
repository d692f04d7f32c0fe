"""Parquet export of the store: one file per table, streamed in batches.

``export_parquet(store, out_dir)`` writes ``sweeps``, ``trials`` (with a
``sweeps`` column: the names of the sweeps the trial belongs to, a list),
``attempts``, ``epochs`` and ``checkpoints`` as ``<table>.parquet``. Column
names are the tables' column names; timestamps are ``timestamp[us, UTC]``.

Memory stays flat whatever the size of the store: rows are fetched through a
server-side cursor (PostgreSQL) / incremental cursor (SQLite) ``batch_rows``
at a time and written with ``pyarrow.parquet.ParquetWriter`` one row group per
batch. Everything is read in one read-only transaction (a consistent snapshot;
REPEATABLE READ on PostgreSQL) and written into a temporary folder inside
``out_dir`` that is moved into place only when every file is complete, so a
failed export leaves nothing half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import BigInteger, Float, Integer, String, Table, Text, select
from sqlalchemy.engine import Connection

from db.errors import StoreError
from db.schema import UTCDateTime
from db.store import ATTEMPTS, CHECKPOINTS, EPOCHS, SWEEP_TRIALS, SWEEPS, TRIALS, Store

EXPORT_TABLES: tuple[str, ...] = ("sweeps", "trials", "attempts", "epochs", "checkpoints")
"""The files ``export_parquet`` writes, ``<name>.parquet`` each."""

_TABLES: dict[str, Table] = {"sweeps": SWEEPS, "trials": TRIALS, "attempts": ATTEMPTS, "epochs": EPOCHS,
                             "checkpoints": CHECKPOINTS}
_ORDER = {"sweeps": ("id",), "trials": ("trial_id",), "attempts": ("trial_id", "attempt"),
          "epochs": ("trial_id", "epoch"), "checkpoints": ("trial_id", "kind")}


def arrow_type(column: Any) -> pa.DataType:
    """The Arrow type a column is exported as."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, (Integer, BigInteger)):
        return pa.int64()
    if isinstance(kind, Float):
        return pa.float64()
    if isinstance(kind, (String, Text)):
        return pa.string()
    raise TypeError(f"no Arrow type for column {column.name} of type {kind!r}")  # pragma: no cover


def arrow_schema(name: str) -> pa.Schema:
    """The Parquet schema of export file ``name`` (one of EXPORT_TABLES)."""
    table = _TABLES[name]
    fields = [pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in table.columns]
    if name == "trials":
        fields.append(pa.field("sweeps", pa.list_(pa.string()), nullable=False))
    return pa.schema(fields)


def export_parquet(store: Store | str, out_dir: str | os.PathLike[str], *, sweep: str | None = None,
                   batch_rows: int = 50_000) -> dict[str, int]:
    """Write the store's tables (or one sweep's part of them) to ``out_dir/<table>.parquet``.

    Returns ``{table: rows written}``. Existing files of the same names are
    replaced only once every new file is complete. ``StoreError`` (one line)
    when the store cannot be read, the sweep does not exist or ``out_dir`` is
    not a usable folder.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows!r}")
    own = not isinstance(store, Store)
    st = Store(store) if own else store
    out = Path(out_dir)
    created_out = not out.exists()
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
        except OSError as exc:
            raise StoreError(f"export: cannot write to {str(out)!r}: {exc.strerror or exc}") from None
        try:
            counts = st._tx(lambda conn: _write_all(st, conn, tmp, sweep, batch_rows), write=False,
                            what="export")
            for name in EXPORT_TABLES:
                os.replace(tmp / f"{name}.parquet", out / f"{name}.parquet")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created_out:
                shutil.rmtree(out, ignore_errors=True)
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return counts
    finally:
        if own:
            st.close()


def _write_all(store: Store, conn: Connection, folder: Path, sweep: str | None, batch_rows: int) -> dict[str, int]:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    sweep_id = None if sweep is None else store._sweep_id(conn, sweep)
    members = None if sweep_id is None else select(SWEEP_TRIALS.c.trial_id).where(SWEEP_TRIALS.c.sweep_id == sweep_id)
    counts: dict[str, int] = {}
    for name in EXPORT_TABLES:
        table = _TABLES[name]
        stmt = select(table)
        if sweep_id is not None:
            stmt = stmt.where(table.c.id == sweep_id) if name == "sweeps" else stmt.where(
                table.c.trial_id.in_(members))
        stmt = stmt.order_by(*(table.c[c] for c in _ORDER[name])).execution_options(yield_per=batch_rows)
        counts[name] = _write_table(conn, name, stmt, folder / f"{name}.parquet")
    return counts


def _write_table(conn: Connection, name: str, stmt: Any, path: Path) -> int:
    schema = arrow_schema(name)
    n_cols = len(_TABLES[name].columns)
    rows_written = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for rows in conn.execute(stmt).partitions():
            columns = [list(col) for col in zip(*rows)] if rows else [[] for _ in range(n_cols)]
            if name == "trials":
                columns.append(_sweep_names(conn, columns[0]))
            arrays = [pa.array(col, type=field.type) for col, field in zip(columns, schema)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            rows_written += len(rows)
    return rows_written


def _sweep_names(conn: Connection, trial_ids: list[str]) -> list[list[str]]:
    """For each trial id, the names of its sweeps (sorted)."""
    names: dict[str, list[str]] = {t: [] for t in trial_ids}
    for start in range(0, len(trial_ids), 1000):
        chunk = trial_ids[start:start + 1000]
        rows = conn.execute(
            select(SWEEP_TRIALS.c.trial_id, SWEEPS.c.name)
            .join(SWEEPS, SWEEPS.c.id == SWEEP_TRIALS.c.sweep_id)
            .where(SWEEP_TRIALS.c.trial_id.in_(chunk))
            .order_by(SWEEP_TRIALS.c.trial_id, SWEEPS.c.name)
        )
        for trial_id, sweep_name in rows:
            names[trial_id].append(sweep_name)
    return [names[t] for t in trial_ids]
