"""Parquet export (library and CLI) and the store CLI commands, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url
from store_helpers import make_specs, metrics

from db import EXPORT_TABLES, Store, StoreError, export_parquet
from db.migrate import head_revision
from db.schema import metadata
from pipeline.cli import main

SECRET = "exp0rt-Pw"


def _fill(store: Store) -> list[str]:
    """Two sweeps sharing a trial, every status, masked metrics, checkpoints, a retried attempt."""
    specs = make_specs(5, epochs=4)
    ids = [s.spec_id for s in specs]
    store.create_sweep("alpha", "grid: alpha\n")
    store.create_sweep("beta", "grid: beta\n")
    store.upsert_trials("alpha", specs[:3])
    store.upsert_trials("beta", specs[2:])
    a = store.claim(ids[0], host="n1", pid=1, run_id="r")
    for e in range(1, 5):
        store.record_epoch(ids[0], a.attempt, metrics(e, test_loss=1 / e, masked_test_loss=0.5 if e == 2 else None))
    store.record_checkpoint(ids[0], "best", 4, "/art/0/best.pt", "b" * 64, 1234)
    store.finish_attempt(ids[0], a.attempt)
    b = store.claim(ids[1], host="n1", pid=1, run_id="r")
    store.record_epoch(ids[1], b.attempt, metrics(1))
    store.fail_attempt(ids[1], b.attempt, "ValueError: boom", "Traceback: ...")
    c = store.claim(ids[2], host="n2", pid=2, run_id="r")
    store.record_epoch(ids[2], c.attempt, metrics(1))
    store.record_checkpoint(ids[2], "last", 1, "/art/2/last.pt", "c" * 64, 99, attempt=c.attempt)
    store.claim(ids[2], host="n2", pid=3, run_id="r")  # a Ray retry: attempt 1 interrupted, attempt 2 running
    return ids


def _read(folder: Path, name: str) -> list[dict]:
    return pq.read_table(folder / f"{name}.parquet").to_pylist()


def test_export_round_trip(store: Store, tmp_path: Path) -> None:
    ids = _fill(store)
    out = tmp_path / "export"
    counts = export_parquet(store, out, batch_rows=3)  # several batches per table
    assert counts == {"sweeps": 2, "trials": 5, "attempts": 4, "epochs": 6, "checkpoints": 2}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in EXPORT_TABLES)

    for name in EXPORT_TABLES:  # columns named as in the tables (+ sweeps on trials)
        columns = [c.name for c in metadata.tables[name].columns] + (["sweeps"] if name == "trials" else [])
        assert pq.read_schema(out / f"{name}.parquet").names == columns
    assert pq.read_schema(out / "epochs.parquet").field("recorded_at").type == pa.timestamp("us", tz="UTC")

    sweeps = _read(out, "sweeps")
    assert [(s["name"], s["grid_text"]) for s in sweeps] == [("alpha", "grid: alpha\n"), ("beta", "grid: beta\n")]
    assert sweeps[0]["created_at"] == store.get_sweep("alpha").created_at

    trials = {t["trial_id"]: t for t in _read(out, "trials")}
    assert set(trials) == set(ids)
    assert trials[ids[2]]["sweeps"] == ["alpha", "beta"] and trials[ids[0]]["sweeps"] == ["alpha"]
    for tid in ids:
        stored = store.get_trial(tid)
        row = trials[tid]
        assert json.loads(row.pop("spec")) == stored.spec.to_dict()
        row.pop("sweeps")
        assert row == {k: v for k, v in dataclasses.asdict(stored).items() if k != "spec"}

    attempts = _read(out, "attempts")
    assert [(a["trial_id"], a["attempt"], a["status"]) for a in attempts] == sorted(
        (a.trial_id, a.attempt, a.status) for tid in ids for a in store.attempts(tid))
    for row in attempts:
        assert row == dataclasses.asdict(next(a for a in store.attempts(row["trial_id"])
                                              if a.attempt == row["attempt"]))

    epochs = _read(out, "epochs")
    assert epochs == [dataclasses.asdict(e) for tid in sorted(ids) for e in store.epochs(tid)]
    assert [e["masked_test_loss"] for e in epochs if e["trial_id"] == ids[0]] == [None, 0.5, None, None]

    checkpoints = _read(out, "checkpoints")
    assert checkpoints == [dataclasses.asdict(c) for tid in sorted(ids) for c in store.checkpoints(tid)]


def test_export_of_one_sweep(store: Store, tmp_path: Path) -> None:
    ids = _fill(store)
    counts = export_parquet(store, tmp_path, sweep="beta")
    assert counts == {"sweeps": 1, "trials": 3, "attempts": 2, "epochs": 1, "checkpoints": 1}
    assert {t["trial_id"] for t in _read(tmp_path, "trials")} == set(ids[2:])
    assert {e["trial_id"] for e in _read(tmp_path, "epochs")} == {ids[2]}


def test_export_of_an_empty_store_writes_empty_files(store: Store, tmp_path: Path) -> None:
    assert export_parquet(store, tmp_path) == dict.fromkeys(EXPORT_TABLES, 0)
    assert pq.read_table(tmp_path / "trials.parquet").num_rows == 0


def test_failed_export_leaves_nothing_half_written(store: Store, tmp_path: Path) -> None:
    _fill(store)
    out = tmp_path / "new"
    with pytest.raises(StoreError, match="no sweep named 'gamma'; known: alpha, beta"):
        export_parquet(store, out, sweep="gamma")
    assert not out.exists()
    old = tmp_path / "old"
    export_parquet(store, old, sweep="alpha")
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with pytest.raises(StoreError):
        export_parquet(store, old, sweep="gamma")
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before  # previous export untouched, no temp left


# ---------------------------------------------------------------------- CLI
def _url_with_password(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":  # trust auth accepts any password
        parsed = parsed.set(password=SECRET)
    return parsed.render_as_string(hide_password=False)


def test_cli_store_upgrade_info_and_export(store_url: str, tmp_path: Path) -> None:
    url = _url_with_password(store_url)
    runner = CliRunner()
    first = runner.invoke(main, ["store", "upgrade", "--store", url])
    assert first.exit_code == 0, first.output
    assert f"schema upgraded from empty to revision {head_revision()}" in first.output
    again = runner.invoke(main, ["store", "upgrade", "--store", url])
    assert again.exit_code == 0 and f"schema already at revision {head_revision()}" in again.output
    with Store(url) as store:
        ids = _fill(store)

    info = runner.invoke(main, ["store", "info", "--store", url, "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.output)
    assert data["revision"] == head_revision() and data["sweeps"] == ["alpha", "beta"]
    assert data["rows"]["epochs"] == 6 and data["trials_by_status"]["completed"] == 1
    text = runner.invoke(main, ["store", "info", "--store", url])
    assert text.exit_code == 0 and "completed 1" in text.output

    out = tmp_path / "parquet"
    result = runner.invoke(main, ["export", "--store", url, "--out", str(out), "--batch-rows", "2"])
    assert result.exit_code == 0, result.output
    assert f"epochs                6 rows  -> {out}/epochs.parquet" in result.output
    assert {t["trial_id"] for t in _read(out, "trials")} == set(ids)
    assert len(_read(out, "epochs")) == 6
    for r in (first, again, info, text, result):
        assert SECRET not in r.output


def test_cli_errors_are_one_line_and_masked(store_url: str, tmp_path: Path) -> None:
    url = _url_with_password(store_url)
    runner = CliRunner()
    runner.invoke(main, ["store", "upgrade", "--store", url])
    out = tmp_path / "out"
    cases = [
        (["export", "--store", url, "--out", str(out), "--sweep", "nope"], "no sweep named 'nope'"),
        (["export", "--store", f"mysql://u:{SECRET}@h/db", "--out", str(out)], "unsupported store URL"),
        (["store", "info", "--store", f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/db"], "cannot reach store"),
        (["store", "upgrade", "--store", "nonsense"], "not a database URL"),
    ]
    for args, expected in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
        assert SECRET not in result.output
    assert not out.exists()  # nothing half-written
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(main, ["export", "--store", url, "--out", str(blocker)])
    assert result.exit_code == 2 and "is a file" in result.output


def test_cli_default_store_is_env_or_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRE_STORE", raising=False)
    runner = CliRunner()
    result = runner.invoke(main, ["store", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cre-results" / "results.db").is_file()
    monkeypatch.setenv("CRE_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    assert runner.invoke(main, ["store", "upgrade"]).exit_code == 0
    assert (tmp_path / "env.db").is_file()
    result = runner.invoke(main, ["export", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0 and (tmp_path / "x" / "sweeps.parquet").is_file()


def test_export_memory_stays_flat(store: Store, tmp_path: Path) -> None:
    import tracemalloc

    from db import utcnow
    from db.store import EPOCHS

    specs = make_specs(200)
    store.upsert_trials("m", specs)
    now = utcnow()
    row = {**metrics(1), "masked_test_loss": None, "masked_test_mse": None, "masked_test_ce": None,
           "masked_test_acc": None, "attempt": 1, "recorded_at": now}
    rows = [{**row, "trial_id": s.spec_id, "epoch": e} for s in specs for e in range(1, 101)]  # 20,000 rows
    store._tx(lambda c: c.execute(EPOCHS.insert(), rows), write=True, what="test fill")
    del rows
    export_parquet(store, tmp_path / "warm", sweep="m", batch_rows=1000)  # imports and statement caches

    def peak(batch_rows: int) -> int:
        tracemalloc.start()
        try:
            assert export_parquet(store, tmp_path / str(batch_rows), batch_rows=batch_rows)["epochs"] == 20_000
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    batched, whole = peak(1000), peak(10**9)
    # Python objects alive at once: about one batch (the PostgreSQL cursor is server-side), not the table.
    assert batched < 8_000_000 and whole > 2 * batched, (batched, whole)
    assert pq.ParquetFile(tmp_path / "1000" / "epochs.parquet").metadata.num_row_groups == 20
