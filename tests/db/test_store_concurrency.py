"""Many processes, one store: claims are exclusive, concurrent writes lose nothing, openers migrate once.

Every worker is a real OS process with its own ``Store`` (as Ray workers are),
started with fork so the test stays fast, released together by a barrier.
"""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest
from store_helpers import make_specs, metrics

from db import Store
from db.migrate import head_revision

CTX = mp.get_context("fork")
PROCS = 8


def _claimer(url: str, trial_ids: list[str], barrier, out) -> None:  # noqa: ANN001
    store = Store(url, upgrade=False)
    won = []
    barrier.wait()
    try:
        for tid in trial_ids:
            attempt = store.claim(tid, host="racer", pid=os.getpid(), run_id=f"run-{os.getpid()}")
            if attempt is not None:
                won.append((tid, attempt.attempt))
        out.put(("ok", won))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", repr(exc)))
    finally:
        store.close()


def _writer(url: str, trial_id: str, rows: int, barrier, out) -> None:  # noqa: ANN001
    store = Store(url, upgrade=False)
    barrier.wait()
    try:
        attempt = store.claim(trial_id, host="writer", pid=os.getpid())
        for epoch in range(1, rows + 1):
            store.record_epoch(trial_id, attempt.attempt, metrics(epoch, test_loss=1.0 / epoch))
        for epoch in range(1, rows + 1, 7):  # rewrite some: replaced, not duplicated
            store.record_epoch(trial_id, attempt.attempt, metrics(epoch, test_loss=2.0))
        store.record_checkpoint(trial_id, "last", rows, f"/a/{trial_id}", "a" * 64, 1, attempt=attempt.attempt)
        store.finish_attempt(trial_id, attempt.attempt)
        out.put(("ok", rows))
    except Exception as exc:  # noqa: BLE001
        out.put(("error", repr(exc)))
    finally:
        store.close()


def _upserter(url: str, specs, barrier, out) -> None:  # noqa: ANN001
    store = Store(url, upgrade=False)
    barrier.wait()
    try:
        out.put(("ok", store.upsert_trials("shared", specs).added))
    except Exception as exc:  # noqa: BLE001
        out.put(("error", repr(exc)))
    finally:
        store.close()


def _opener(url: str, barrier, out) -> None:  # noqa: ANN001
    barrier.wait()
    try:
        with Store(url) as store:  # all open a fresh database at once: one migrates, the others wait
            out.put(("ok", store.info()["revision"]))
    except Exception as exc:  # noqa: BLE001
        out.put(("error", repr(exc)))


def _run(target, args_per_proc: list[tuple]) -> list:  # noqa: ANN001
    barrier = CTX.Barrier(len(args_per_proc))
    out = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, barrier, out)) for args in args_per_proc]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    errors = [r[1] for r in results if r[0] != "ok"]
    assert errors == []
    return [r[1] for r in results]


def test_racing_claims_each_trial_won_exactly_once(store: Store) -> None:
    specs = make_specs(40)
    ids = [s.spec_id for s in specs]
    store.upsert_trials("race", specs)
    # every process walks the same trials (half of them in reverse order, to collide from both ends)
    results = _run(_claimer, [(store._url.render_as_string(hide_password=False), ids if i % 2 else ids[::-1])
                              for i in range(PROCS)])
    won = [tid for proc in results for tid, _ in proc]
    assert sorted(won) == sorted(ids)  # every trial claimed, none twice
    assert all(n == 1 for proc in results for _, n in proc)
    assert store.counts("race")["running"] == 40
    for tid in ids:
        attempts = store.attempts(tid)
        assert [(a.attempt, a.status) for a in attempts] == [(1, "running")]


def test_concurrent_writers_lose_and_duplicate_nothing(store: Store) -> None:
    rows = 60
    specs = make_specs(PROCS, epochs=rows)
    store.upsert_trials("write", specs)
    url = store._url.render_as_string(hide_password=False)
    assert _run(_writer, [(url, s.spec_id, rows) for s in specs]) == [rows] * PROCS
    assert store.counts("write")["completed"] == PROCS
    for spec in specs:
        epochs = store.epochs(spec.spec_id)
        assert [e.epoch for e in epochs] == list(range(1, rows + 1))
        assert epochs[0].test_loss == 2.0 and epochs[1].test_loss == 0.5
        trial = store.get_trial(spec.spec_id)
        assert trial.best_epoch == rows and trial.best_test_loss == pytest.approx(1.0 / rows)
        assert store.get_checkpoint(spec.spec_id, "last").epoch == rows


def test_concurrent_upserts_of_the_same_grid_add_each_trial_once(store: Store) -> None:
    specs = make_specs(300)
    url = store._url.render_as_string(hide_password=False)
    added = _run(_upserter, [(url, specs)] * 4)
    assert sum(added) == 300  # exact even when the inserts race
    assert store.counts("shared")["pending"] == 300
    assert len(store.trials("shared")) == 300


def test_concurrent_first_opens_migrate_once(store_url: str) -> None:
    assert _run(_opener, [(store_url,)] * 4) == [head_revision()] * 4
