"""One attempt at one trial, as a Ray worker runs it (and as tests run it without Ray).

claim the trial (attempt row) -> heartbeat in the background -> resume from the
trial's ``last`` checkpoint if there is one -> train epoch by epoch, writing every
epoch row and, every ``checkpoint_interval_s`` and at the end, the ``last`` /
``best`` checkpoints (files under the artifact root, rows in the store) ->
finish the attempt. An exception or a non-finite loss fails the attempt with its
error and traceback; the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from cre import Trainer, TrialSpec
from cre.checkpoint import best_payload, from_bytes, to_bytes
from db import AttemptLost, Store
from pipeline.artifacts import ArtifactError, ArtifactRoot

log = logging.getLogger("cre.worker")
HOST = socket.gethostname()


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker needs to know; travels to Ray workers by value (no secrets printed)."""

    store_url: str
    artifacts: str  # artifact root (local folder or fsspec URI), already validated
    run_id: str  # this launch's id: a Ray retry inside the launch may take over its own attempts
    data_dir: str | None = None
    device: str = "auto"  # auto: the GPU Ray assigned, else CPU
    threads: int | None = None  # torch CPU threads (= CPUs per trial)
    checkpoint_interval_s: float = 30.0  # write last/best at most this often (always at the end); 0 = every epoch
    heartbeat_s: float = 10.0


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: completed, failed, skipped (not claimable) or lost (taken over)."""

    status: str
    trial_id: str
    attempt: int | None = None
    start_epoch: int | None = None
    epochs_run: int = 0
    error: str | None = None

    def report(self) -> dict[str, Any]:
        """The metrics reported to Tune (names clear of Tune's own result keys, no None)."""
        out = {"outcome": self.status, "cre_trial_id": self.trial_id, "cre_attempt": self.attempt,
               "start_epoch": self.start_epoch, "epochs_run": self.epochs_run, "error": self.error}
        return {k: v for k, v in out.items() if v is not None}


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(url: str) -> Store:
    """One Store per URL per process (Ray reuses worker processes across trials)."""
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            store = _STORES[url] = Store(url)
        return store


class Heartbeat(threading.Thread):
    """Refreshes the attempt's heartbeat; notices when the attempt was taken away."""

    def __init__(self, store: Store, trial_id: str, attempt: int, every_s: float) -> None:
        super().__init__(name=f"heartbeat-{trial_id[:8]}", daemon=True)
        self.store, self.trial_id, self.attempt, self.every_s = store, trial_id, attempt, every_s
        self.stop_event = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stop_event.wait(self.every_s):
            try:
                self.store.heartbeat(self.trial_id, self.attempt)
            except AttemptLost:
                self.lost = True
                return
            except Exception as exc:  # noqa: BLE001 - a flaky store must not kill training
                log.warning("heartbeat of %s failed: %s", self.trial_id[:12], exc)

    def stop(self) -> None:
        self.stop_event.set()


def _resume(store: Store, trainer: Trainer) -> Trainer:
    """The trainer continued from the trial's ``last`` checkpoint, or a fresh one when there is none usable."""
    last = store.get_checkpoint(trainer.spec.spec_id, "last")
    if last is None:
        return trainer
    try:
        state = from_bytes(ArtifactRoot.read(last.uri, last.sha256), trainer.device)
        trainer.load_state_dict(state)
        return trainer
    except (ArtifactError, ValueError, RuntimeError, KeyError) as exc:
        log.warning("trial %s: cannot use last checkpoint %s (%s); starting from epoch 1",
                    trainer.spec.spec_id[:12], last.uri, exc)
        return Trainer(trainer.spec, device=trainer.device, data=trainer.data)  # a partial load is discarded


def run_attempt(spec: TrialSpec, cfg: WorkerConfig, *, store: Store | None = None) -> Outcome:
    """Claim, train, record and finish one attempt of ``spec``; never raises for a training error."""
    store = store or open_store(cfg.store_url)
    trial_id = spec.spec_id
    attempt = store.claim(trial_id, host=HOST, pid=os.getpid(), run_id=cfg.run_id)
    if attempt is None:
        return Outcome("skipped", trial_id)
    n = attempt.attempt
    heartbeat = Heartbeat(store, trial_id, n, cfg.heartbeat_s)
    heartbeat.start()
    artifacts = ArtifactRoot(cfg.artifacts)
    start_epoch = None
    epochs_run = 0
    try:
        trainer = Trainer(spec, device=_device(cfg.device), data_dir=cfg.data_dir, threads=cfg.threads)
        trainer = _resume(store, trainer)
        start_epoch = trainer.epoch + 1
        store.set_start_epoch(trial_id, n, start_epoch)
        best: dict[str, Any] | None = None
        last_flush = time.monotonic()
        while trainer.epoch < spec.epochs:
            if heartbeat.lost:
                raise AttemptLost(f"attempt {n} of trial {trial_id[:12]} was taken over")
            metrics = trainer.run_epoch()
            epochs_run += 1
            if trainer.is_best:
                best = best_payload(trainer)
            store.record_epoch(trial_id, n, metrics.to_dict())
            final = trainer.epoch >= spec.epochs
            if final or time.monotonic() - last_flush >= cfg.checkpoint_interval_s:
                if best is not None:
                    _save(store, artifacts, trial_id, "best", best["epoch"], to_bytes(best))
                    best = None
                if not final:
                    _save(store, artifacts, trial_id, "last", trainer.epoch, to_bytes(trainer.state_dict()))
                last_flush = time.monotonic()
        store.finish_attempt(trial_id, n)
        return Outcome("completed", trial_id, n, start_epoch, epochs_run)
    except AttemptLost as exc:
        return Outcome("lost", trial_id, n, start_epoch, epochs_run, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded in the store, the sweep goes on
        line = f"{type(exc).__name__}: {exc}".splitlines()[0]
        try:
            store.fail_attempt(trial_id, n, line, traceback.format_exc())
        except AttemptLost:
            return Outcome("lost", trial_id, n, start_epoch, epochs_run, line)
        return Outcome("failed", trial_id, n, start_epoch, epochs_run, line)
    except BaseException:  # KeyboardInterrupt, SystemExit: the attempt is interrupted, not failed
        try:
            store.interrupt_attempt(trial_id, n, "worker interrupted")
        except Exception:  # noqa: BLE001
            pass
        raise
    finally:
        heartbeat.stop()


def _save(store: Store, artifacts: ArtifactRoot, trial_id: str, kind: str, epoch: int, data: bytes) -> None:
    uri = artifacts.uri_for(trial_id, kind)
    sha, size = artifacts.write(uri, data)
    store.record_checkpoint(trial_id, kind, epoch, uri, sha, size)


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
