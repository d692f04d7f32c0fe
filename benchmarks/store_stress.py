"""Stress the results store: N processes write M epoch rows each, concurrently, through ``db.Store``.

    python benchmarks/store_stress.py --store sqlite:////tmp/stress.db --writers 8 --rows 500
    python benchmarks/store_stress.py --store postgresql+psycopg://postgres@127.0.0.1:5432/stress --writers 8 --rows 500

Each writer is its own process with its own ``Store`` and its own trial (of a
fresh sweep ``stress-<random>``): it claims the trial, records M epochs one
transaction each (exactly what a training worker does), and finishes the
attempt. Process start-up and store opening are not timed: the writers wait at
a barrier, and the clock runs from its release until the last writer is done.
The last line reads::

    store stress: writers=N rows=R expected=X found=Y errors=E rows_per_s=V

R: rows the writers reported written; X: N * M; Y: epoch rows of the sweep's
trials found in the store afterwards; E: failed store calls. Exit code 0 only
when found == expected and there were no errors.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's db/ and cre/, not an installed copy


def _writer(url: str, trial_id: str, rows: int, run_id: str, barrier, results) -> None:  # noqa: ANN001
    """One worker process: claim the trial, record ``rows`` epochs, finish. Reports (written, errors, messages)."""
    written, errors, messages, cpu = 0, 0, [], 0.0
    try:
        import cre.spec  # noqa: F401 - import the spec (and torch) before the clock starts, as a worker would

        from db import Store

        store = Store(url, upgrade=False)
    except Exception as exc:  # noqa: BLE001 - reported, counted
        barrier.wait()
        results.put((0, rows, [f"open: {exc}"], 0.0))
        return
    barrier.wait()
    cpu0 = time.process_time()
    try:
        attempt = store.claim(trial_id, host=socket.gethostname(), pid=os.getpid(), run_id=run_id)
        if attempt is None:
            raise RuntimeError(f"could not claim trial {trial_id[:12]}")
        for epoch in range(1, rows + 1):
            metrics = {
                "epoch": epoch, "train_loss": 1.0 / epoch, "train_mse": 0.5 / epoch, "train_ce": 0.5 / epoch,
                "test_loss": 1.1 / epoch, "test_mse": 0.6 / epoch, "test_ce": 0.5 / epoch,
                "test_acc": 1.0 - 1.0 / (epoch + 1), "train_seconds": 0.01,
            }
            try:
                store.record_epoch(trial_id, attempt.attempt, metrics)
                written += 1
            except Exception as exc:  # noqa: BLE001 - count and go on
                errors += 1
                if len(messages) < 3:
                    messages.append(f"epoch {epoch}: {exc}")
        store.finish_attempt(trial_id, attempt.attempt)
    except Exception as exc:  # noqa: BLE001
        errors += 1
        messages.append(str(exc))
    finally:
        cpu = time.process_time() - cpu0
        store.close()
        results.put((written, errors, messages, cpu))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="store URL (sqlite:///PATH or postgresql+psycopg://...)")
    parser.add_argument("--writers", type=int, default=8, help="writer processes (default 8)")
    parser.add_argument("--rows", type=int, default=500, help="epoch rows per writer (default 500)")
    parser.add_argument("--start-method", choices=("spawn", "fork", "forkserver"), default="spawn",
                        help="how writer processes start (default spawn: fresh interpreters, like Ray workers; "
                             "fork starts faster, the tests use it)")
    args = parser.parse_args(argv)
    if args.writers < 1 or args.rows < 1:
        parser.error("--writers and --rows must be >= 1")

    from sqlalchemy import func, select

    from db import Store, StoreError
    from db.store import EPOCHS

    try:
        store = Store(args.store)
    except StoreError as exc:
        print(f"store stress: {exc}", file=sys.stderr)
        return 2
    from cre.spec import TrialSpec  # after the store: a bad URL is reported without loading torch

    tag = uuid.uuid4().hex[:8]
    sweep = f"stress-{tag}"
    base_seed = int(tag, 16) % 1_000_000_000
    specs = [TrialSpec(model="fc-small", dataset="digits", latent_dim=2, epochs=args.rows, seed=base_seed + i)
             for i in range(args.writers)]
    store.upsert_trials(sweep, specs)
    print(f"store stress: {store.url}, sweep {sweep}: {args.writers} writers x {args.rows} rows", flush=True)

    ctx = mp.get_context(args.start_method)
    barrier = ctx.Barrier(args.writers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(args.store, s.spec_id, args.rows, f"stress-{tag}", barrier, results))
             for s in specs]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    reports = [results.get() for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()

    written = sum(r[0] for r in reports)
    errors = sum(r[1] for r in reports)
    for r in reports:
        for message in r[2]:
            print(f"  error: {message}", file=sys.stderr)
    ids = [s.spec_id for s in specs]
    found = store._tx(lambda c: c.execute(select(func.count()).select_from(EPOCHS)
                                          .where(EPOCHS.c.trial_id.in_(ids))).scalar_one(),
                      write=False, what="count stress rows")
    counts = store.counts(sweep)
    cpu = sum(r[3] for r in reports)
    print(f"store stress: {elapsed:.2f} s wall; writers' own CPU {1000 * cpu / max(written, 1):.2f} ms per row "
          f"(the database server's is not included); trials {counts}", flush=True)
    store.close()
    expected = args.writers * args.rows
    print(f"store stress: writers={args.writers} rows={written} expected={expected} found={found} "
          f"errors={errors} rows_per_s={found / elapsed:.0f}")
    return 0 if found == expected and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
