"""The Store contract, run against SQLite and PostgreSQL alike (fixture ``store``)."""

from __future__ import annotations

import json
import pickle
import time
from datetime import timedelta, timezone

import pytest
from sqlalchemy import text, update
from store_helpers import make_specs, metrics

from cre.engine import EpochMetrics
from db import TRIAL_STATUSES, AttemptLost, Store, StoreError, UpsertResult
from db.store import ATTEMPTS


# ------------------------------------------------------------------ sweeps
def test_create_sweep_is_get_or_create_and_updates_grid_text(store: Store) -> None:
    first = store.create_sweep("quick", "a: 1\n")
    again = store.create_sweep("quick", "a: 1\n")
    assert again.created_at == first.created_at and again.grid_text == "a: 1\n"
    changed = store.create_sweep("quick", "a: 2\n")
    assert changed.grid_text == "a: 2\n" and changed.created_at == first.created_at
    assert store.get_sweep("quick").grid_text == "a: 2\n"
    assert store.create_sweep("quick").grid_text == "a: 2\n"  # no text given: kept
    assert store.get_sweep("nope") is None
    store.create_sweep("paper", "")
    assert [s.name for s in store.list_sweeps()] == ["quick", "paper"]
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == timedelta(0)


# ------------------------------------------------------------------ trials
def test_upsert_is_idempotent_and_keeps_status(store: Store) -> None:
    specs = make_specs(30)
    assert store.upsert_trials("s", specs) == UpsertResult(added=30, existing=0)
    assert store.upsert_trials("s", specs) == UpsertResult(added=0, existing=30)
    # duplicates in the input count once; new ones are added next to the existing
    more = make_specs(40)
    assert store.upsert_trials("s", more + more[:5]) == UpsertResult(added=10, existing=30)
    assert store.counts("s") == {"pending": 40, "running": 0, "completed": 0, "failed": 0, "interrupted": 0}

    running = store.claim(specs[0].spec_id, host="h", pid=1)
    store.upsert_trials("s", specs)  # a relaunch must not reset a running trial
    assert store.get_trial(specs[0].spec_id).status == "running"
    assert store.get_trial(specs[0].spec_id).attempts == running.attempt == 1
    assert len(store.trials("s")) == 40


def test_a_trial_can_belong_to_several_sweeps(store: Store) -> None:
    specs = make_specs(6)
    store.upsert_trials("a", specs[:4])
    assert store.upsert_trials("b", specs[2:]) == UpsertResult(added=2, existing=2)
    assert {t.trial_id for t in store.trials("a")} == {s.spec_id for s in specs[:4]}
    assert {t.trial_id for t in store.trials("b")} == {s.spec_id for s in specs[2:]}
    assert len(store.trials()) == 6
    assert sum(store.counts().values()) == 6 and sum(store.counts("b").values()) == 4


def test_upsert_of_ten_thousand_specs_is_one_fast_transaction(store: Store) -> None:
    specs = [s for lam in (0.0, 0.25, 0.5, 0.75, 1.0) for s in make_specs(2000, lam=lam)]
    start = time.perf_counter()
    result = store.upsert_trials("big", specs)
    first = time.perf_counter() - start
    assert result == UpsertResult(added=10_000, existing=0)
    start = time.perf_counter()
    assert store.upsert_trials("big", specs) == UpsertResult(added=0, existing=10_000)
    second = time.perf_counter() - start
    assert store.counts("big")["pending"] == 10_000
    # bulk statements, not a round trip per trial: seconds, not minutes (generous for a loaded 2-core box)
    assert first < 30 and second < 30, (first, second)


def test_trial_holds_spec_and_indexed_columns(store: Store) -> None:
    spec = make_specs(1, epochs=7)[0]
    store.upsert_trials("s", [spec])
    trial = store.get_trial(spec.spec_id)
    assert trial.spec == spec and trial.trial_id == spec.spec_id
    assert (trial.model, trial.dataset, trial.latent_dim, trial.lam, trial.seed, trial.epochs) == (
        "fc-small", "digits", 4, 0.5, 0, 7)
    assert trial.mask_ratio == 0.0 and trial.mask_variant is None
    assert (trial.status, trial.attempts, trial.last_error, trial.best_epoch) == ("pending", 0, None, None)
    assert trial.created_at.tzinfo == timezone.utc and trial.updated_at >= trial.created_at
    assert store.get_trial("0" * 64) is None


def test_trials_filter_by_status(store: Store) -> None:
    specs = make_specs(5)
    store.upsert_trials("s", specs)
    store.claim(specs[0].spec_id, host="h", pid=1)
    assert [t.trial_id for t in store.trials("s", status="running")] == [specs[0].spec_id]
    assert len(store.trials("s", status=("pending", "running"))) == 5
    assert store.trials(status="failed") == []
    with pytest.raises(ValueError, match="status must be among"):
        store.trials(status="done")


def test_counts_by_model_and_dataset(store: Store) -> None:
    store.upsert_trials("s", make_specs(3) + make_specs(2, model="fc-medium"))
    a = store.claim(make_specs(1)[0].spec_id, host="h", pid=1)
    assert a is not None
    rows = store.counts_by("s")
    assert rows == [
        {"model": "fc-medium", "dataset": "digits", "status": "pending", "count": 2},
        {"model": "fc-small", "dataset": "digits", "status": "pending", "count": 2},
        {"model": "fc-small", "dataset": "digits", "status": "running", "count": 1},
    ]
    assert store.counts_by(by=("lam",)) == [{"lam": 0.5, "status": "pending", "count": 4},
                                            {"lam": 0.5, "status": "running", "count": 1}]
    with pytest.raises(ValueError, match="by must name columns"):
        store.counts_by(by=("spec",))
    assert set(store.counts()) == set(TRIAL_STATUSES)


def test_unknown_sweep_is_a_clear_error(store: Store) -> None:
    store.create_sweep("real")
    with pytest.raises(StoreError, match="no sweep named 'typo'; known: real"):
        store.trials("typo")
    with pytest.raises(StoreError, match="no sweep named"):
        store.counts("typo")


# ------------------------------------------------------------------ attempts
def test_claim_lifecycle_and_run_id_takeover(store: Store) -> None:
    spec = make_specs(1)[0]
    tid = spec.spec_id
    store.upsert_trials("s", [spec])
    a1 = store.claim(tid, host="node1", pid=11, run_id="run-A")
    assert (a1.attempt, a1.status, a1.host, a1.pid, a1.run_id, a1.start_epoch) == (1, "running", "node1", 11,
                                                                                     "run-A", 1)
    assert store.get_trial(tid).status == "running" and store.get_trial(tid).attempts == 1
    assert store.claim(tid, host="node2", pid=22, run_id="run-B") is None  # another launch: not yours
    assert store.claim(tid, host="node2", pid=22) is None  # no run id: not yours either
    # Ray retried the trial inside the same launch: the old attempt is interrupted, a new one starts
    a2 = store.claim(tid, host="node2", pid=22, run_id="run-A", start_epoch=3)
    assert (a2.attempt, a2.start_epoch) == (2, 3)
    old, new = store.attempts(tid)
    assert (old.status, new.status) == ("interrupted", "running")
    assert old.finished_at is not None and "superseded" in old.error
    with pytest.raises(AttemptLost):
        store.heartbeat(tid, 1)
    store.set_start_epoch(tid, 2, 4)
    assert store.attempts(tid)[1].start_epoch == 4
    store.record_epoch(tid, 2, metrics(4))
    done = store.finish_attempt(tid, 2)
    assert (done.status, done.attempts, done.best_epoch) == ("completed", 2, 4)
    assert store.claim(tid, host="node3", pid=33, run_id="run-A") is None  # completed: never again
    assert store.attempts(tid)[1].status == "completed"


def test_claim_of_unknown_trial_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown trial"):
        store.claim("f" * 64, host="h", pid=1)
    with pytest.raises(ValueError, match="start_epoch must be an integer >= 1"):
        store.claim("f" * 64, host="h", pid=1, start_epoch=0)


def test_record_epoch_replaces_instead_of_duplicating(store: Store) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    a = store.claim(spec.spec_id, host="h", pid=1)
    store.record_epoch(spec.spec_id, a.attempt, metrics(1, test_loss=0.9))
    store.record_epoch(spec.spec_id, a.attempt, metrics(2, test_loss=0.8, masked_test_acc=0.25))
    store.record_epoch(spec.spec_id, a.attempt, metrics(1, test_loss=0.7))  # epoch 1 again: replaced
    rows = store.epochs(spec.spec_id)
    assert [(r.epoch, r.test_loss) for r in rows] == [(1, 0.7), (2, 0.8)]
    assert rows[1].masked_test_acc == 0.25 and rows[1].masked_test_loss is None
    assert rows[0].attempt == a.attempt and rows[0].recorded_at.tzinfo == timezone.utc
    assert (rows[0].train_loss, rows[0].train_mse, rows[0].train_ce, rows[0].test_mse, rows[0].test_ce,
            rows[0].test_acc, rows[0].train_seconds) == (2.0, 0.5, 1.5, 0.25, 0.75, 0.5, 0.125)
    # A resumed attempt rewrites epochs; rows remember their writer.
    store.interrupt_attempt(spec.spec_id, a.attempt, "test")
    b = store.claim(spec.spec_id, host="h", pid=2, start_epoch=2)
    store.record_epoch(spec.spec_id, b.attempt, metrics(2, test_loss=0.6))
    assert [(r.epoch, r.test_loss, r.attempt) for r in store.epochs(spec.spec_id)] == [(1, 0.7, 1), (2, 0.6, 2)]


def test_record_epoch_accepts_engine_metrics_and_refreshes_heartbeat(store: Store) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    a = store.claim(spec.spec_id, host="h", pid=1)
    m = EpochMetrics(epoch=1, train_loss=1.0, train_mse=0.5, train_ce=1.5, test_loss=1.25, test_mse=0.5,
                     test_ce=2.0, test_acc=0.75, train_seconds=0.5)
    time.sleep(0.01)
    store.record_epoch(spec.spec_id, a.attempt, m.to_dict())
    store.record_epoch(spec.spec_id, a.attempt, m.__class__(**{**m.to_dict(), "epoch": 2}))  # the dataclass too
    assert [r.test_acc for r in store.epochs(spec.spec_id)] == [0.75, 0.75]
    assert store.attempts(spec.spec_id)[0].heartbeat_at > a.heartbeat_at


@pytest.mark.parametrize("bad, message", [
    ({"epoch": 1}, "missing train_loss"),
    ({**metrics(1), "test_accuracy": 1.0}, "unknown test_accuracy"),
    ({**metrics(1), "test_loss": float("nan")}, "test_loss must be finite"),
    ({**metrics(1), "test_acc": "high"}, "test_acc must be a number"),
    (metrics(0), "epoch must be an integer >= 1"),
])
def test_record_epoch_rejects_bad_metrics(store: Store, bad: dict, message: str) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    a = store.claim(spec.spec_id, host="h", pid=1)
    with pytest.raises(ValueError, match=message):
        store.record_epoch(spec.spec_id, a.attempt, bad)
    assert store.epochs(spec.spec_id) == []


def test_finish_computes_best_epoch_earliest_on_ties(store: Store) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    a = store.claim(spec.spec_id, host="h", pid=1)
    for epoch, loss in [(1, 0.9), (2, 0.5), (3, 0.7), (4, 0.5), (5, 0.6)]:
        store.record_epoch(spec.spec_id, a.attempt, metrics(epoch, test_loss=loss, test_acc=epoch / 10))
    trial = store.finish_attempt(spec.spec_id, a.attempt)
    assert (trial.status, trial.best_epoch, trial.best_test_loss, trial.best_test_acc) == ("completed", 2, 0.5, 0.2)
    assert (trial.best_test_mse, trial.best_test_ce) == (0.25, 0.75)
    attempt = store.attempts(spec.spec_id)[0]
    assert attempt.status == "completed" and attempt.finished_at >= attempt.started_at
    assert store.get_trial(spec.spec_id) == trial


def test_fail_then_reset_then_retry(store: Store) -> None:
    specs = make_specs(2)
    tid = specs[0].spec_id
    store.upsert_trials("s", specs)
    a = store.claim(tid, host="h", pid=1)
    trial = store.fail_attempt(tid, a.attempt, "RuntimeError: CUDA out of memory\nmore detail", "Traceback ...")
    assert (trial.status, trial.last_error) == ("failed", "RuntimeError: CUDA out of memory")
    attempt = store.attempts(tid)[0]
    assert (attempt.status, attempt.error, attempt.traceback) == (
        "failed", "RuntimeError: CUDA out of memory\nmore detail", "Traceback ...")
    assert [t.trial_id for t in store.recent_failures("s")] == [tid]
    assert store.claim(tid, host="h", pid=1) is None  # failed trials wait for a reset
    # resume: failed -> pending; pending and unknown ids are left alone
    assert store.reset_trials([tid, specs[1].spec_id, "0" * 64]) == [tid]
    assert store.get_trial(tid).status == "pending"
    b = store.claim(tid, host="h", pid=2)
    assert b.attempt == 2
    with pytest.raises(ValueError, match="running trials cannot be reset"):
        store.reset_trials([tid], from_status=("running",))
    with pytest.raises(ValueError, match="to must be one of"):
        store.reset_trials([tid], to="running")


def test_recent_failures_newest_first_and_limited(store: Store) -> None:
    specs = make_specs(3)
    store.upsert_trials("s", specs)
    for i, spec in enumerate(specs):
        a = store.claim(spec.spec_id, host="h", pid=1)
        store.fail_attempt(spec.spec_id, a.attempt, f"error {i}")
        time.sleep(0.002)
    assert [t.last_error for t in store.recent_failures(limit=2)] == ["error 2", "error 1"]


def test_attempt_lost_refuses_every_write_of_the_old_attempt(store: Store) -> None:
    spec = make_specs(1)[0]
    tid = spec.spec_id
    store.upsert_trials("s", [spec])
    old = store.claim(tid, host="h", pid=1)
    store.record_epoch(tid, old.attempt, metrics(1))
    assert store.interrupt_running(reason="driver stopped") == [tid]
    new = store.claim(tid, host="h2", pid=2)  # someone else took the trial over
    assert new.attempt == 2
    for call in (
        lambda: store.heartbeat(tid, old.attempt),
        lambda: store.record_epoch(tid, old.attempt, metrics(2)),
        lambda: store.set_start_epoch(tid, old.attempt, 2),
        lambda: store.record_checkpoint(tid, "last", 2, "/x", "a" * 64, 1, attempt=old.attempt),
        lambda: store.finish_attempt(tid, old.attempt),
        lambda: store.fail_attempt(tid, old.attempt, "boom"),
    ):
        with pytest.raises(AttemptLost, match="attempt 1 of trial .* is no longer running: it is interrupted "
                                              r"\(driver stopped\)"):
            call()
    with pytest.raises(AttemptLost, match="has no attempt 7"):
        store.heartbeat(tid, 7)
    assert [e.epoch for e in store.epochs(tid)] == [1]  # nothing of the old attempt was written
    assert store.checkpoints(tid) == []
    assert store.get_trial(tid).status == "running" and store.attempts(tid)[1].status == "running"
    assert store.interrupt_attempt(tid, old.attempt, "again") is False  # idempotent, changes nothing
    assert store.attempts(tid)[1].status == "running"


def test_interrupt_attempt_and_interrupt_running_by_run_and_sweep(store: Store) -> None:
    specs = make_specs(4)
    store.upsert_trials("a", specs[:2])
    store.upsert_trials("b", specs[2:])
    a0 = store.claim(specs[0].spec_id, host="h", pid=1, run_id="r1")
    store.claim(specs[1].spec_id, host="h", pid=1, run_id="r2")
    store.claim(specs[2].spec_id, host="h", pid=1, run_id="r1")
    store.claim(specs[3].spec_id, host="h", pid=1, run_id="r1")
    assert store.interrupt_attempt(specs[0].spec_id, a0.attempt, "Ctrl-C") is True
    assert store.get_trial(specs[0].spec_id).status == "interrupted"
    assert store.attempts(specs[0].spec_id)[0].error == "Ctrl-C"
    assert store.interrupt_running(sweep="b", run_id="r2") == []
    assert sorted(store.interrupt_running(sweep="b", run_id="r1")) == sorted([specs[2].spec_id, specs[3].spec_id])
    assert store.counts() == {"pending": 0, "running": 1, "completed": 0, "failed": 0, "interrupted": 3}
    assert [a.trial_id for a in store.running_attempts()] == [specs[1].spec_id]
    assert store.running_attempts("b") == []
    assert store.interrupt_running(run_id="r2") == [specs[1].spec_id]
    again = store.claim(specs[1].spec_id, host="h", pid=2, run_id="r3")  # interrupted trials can be claimed
    assert again.attempt == 2


def test_mark_stale_interrupts_only_silent_attempts(store: Store) -> None:
    specs = make_specs(3)
    store.upsert_trials("s", specs)
    quiet = store.claim(specs[0].spec_id, host="h", pid=1)
    alive = store.claim(specs[1].spec_id, host="h", pid=2)
    # make the first attempt's last sign of life an hour old
    store._tx(lambda c: c.execute(update(ATTEMPTS).where(ATTEMPTS.c.trial_id == specs[0].spec_id)
                                  .values(heartbeat_at=quiet.heartbeat_at - timedelta(hours=1))),
              write=True, what="test")
    store.heartbeat(specs[1].spec_id, alive.attempt)
    assert store.mark_stale(600) == [specs[0].spec_id]
    assert store.mark_stale(600) == []  # already handled
    stale = store.attempts(specs[0].spec_id)[0]
    assert stale.status == "interrupted" and "no heartbeat" in stale.error
    assert store.get_trial(specs[0].spec_id).status == "interrupted"
    assert store.get_trial(specs[1].spec_id).status == "running"
    with pytest.raises(AttemptLost):  # the silent worker wakes up: too late
        store.record_epoch(specs[0].spec_id, quiet.attempt, metrics(1))
    assert store.claim(specs[0].spec_id, host="h", pid=3).attempt == 2
    time.sleep(0.05)
    assert set(store.mark_stale(0.01, sweep="s")) == {specs[0].spec_id, specs[1].spec_id}  # both silent for 50 ms
    assert store.counts("s")["running"] == 0
    with pytest.raises(ValueError, match="timeout_s must be a number >= 0"):
        store.mark_stale(-1)


def test_checkpoints_one_row_per_kind_replaced(store: Store) -> None:
    spec = make_specs(1)[0]
    tid = spec.spec_id
    store.upsert_trials("s", [spec])
    store.record_checkpoint(tid, "last", 1, "/art/t/last.pt", "a" * 64, 100)
    store.record_checkpoint(tid, "best", 1, "/art/t/best.pt", "b" * 64, 90)
    newer = store.record_checkpoint(tid, "last", 2, "/art/t/last.pt", "c" * 64, 101)
    rows = store.checkpoints(tid)
    assert [(c.kind, c.epoch, c.sha256, c.bytes) for c in rows] == [("best", 1, "b" * 64, 90),
                                                                    ("last", 2, "c" * 64, 101)]
    assert store.get_checkpoint(tid, "last") == newer
    assert store.get_checkpoint("0" * 64, "best") is None
    with pytest.raises(ValueError, match="kind must be one of last, best"):
        store.record_checkpoint(tid, "final", 1, "/x", "a" * 64, 1)
    with pytest.raises(ValueError, match="sha256 must be 64 lowercase hex"):
        store.record_checkpoint(tid, "last", 1, "/x", "xyz", 1)
    with pytest.raises(StoreError, match="unknown trial"):
        store.record_checkpoint("0" * 64, "last", 1, "/x", "a" * 64, 1)


def test_throughput_counts_recent_work(store: Store) -> None:
    specs = make_specs(2)
    store.upsert_trials("s", specs)
    assert store.throughput("s") == {"window_s": 600.0, "completed": 0, "epochs": 0, "completed_per_s": 0.0,
                                     "epochs_per_s": 0.0}
    for spec in specs:
        a = store.claim(spec.spec_id, host="h", pid=1)
        for e in (1, 2, 3):
            store.record_epoch(spec.spec_id, a.attempt, metrics(e))
        store.finish_attempt(spec.spec_id, a.attempt)
    rate = store.throughput("s", window_s=60)
    assert (rate["completed"], rate["epochs"]) == (2, 6)
    assert rate["epochs_per_s"] == pytest.approx(6.0)  # active for less than a second: rate over 1 s
    assert rate["completed_per_s"] == pytest.approx(2.0)


def test_store_pickles_as_its_url_and_reopens(store: Store) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    copy = pickle.loads(pickle.dumps(store))
    try:
        assert copy.url == store.url and copy.dialect == store.dialect
        assert copy.get_trial(spec.spec_id).spec == spec
    finally:
        copy.close()


def test_stored_spec_that_no_longer_validates_is_still_readable(store: Store) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    renamed = json.dumps({**spec.to_dict(), "model": "fc-retired"}, sort_keys=True)
    store._tx(lambda c: c.execute(text("UPDATE trials SET spec = :s, model = 'fc-retired'"), {"s": renamed}),
              write=True, what="test")
    trial = store.get_trial(spec.spec_id)
    assert trial.model == "fc-retired" and trial.spec.model == "fc-retired" and trial.spec.seed == spec.seed


def test_status_check_constraint_is_enforced(store: Store) -> None:
    spec = make_specs(1)[0]
    store.upsert_trials("s", [spec])
    with pytest.raises(StoreError, match="test failed: .*(CHECK constraint|ck_trials_status)"):
        store._tx(lambda c: c.execute(text("UPDATE trials SET status = 'done'")), write=True, what="test")
    assert store.get_trial(spec.spec_id).status == "pending"


def test_sqlite_runs_in_wal_with_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        def pragmas(conn):  # noqa: ANN001, ANN202
            return [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in
                    ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")]

        assert store._tx(pragmas, write=False, what="test") == ["wal", 1, 30000, 1]  # synchronous=NORMAL
        with pytest.raises(StoreError, match="FOREIGN KEY constraint failed"):
            store._tx(lambda c: c.execute(text("INSERT INTO sweep_trials VALUES (1, 'nope')")), write=True,
                      what="test")
