"""Scheduling a sweep's trials with Ray Tune; the store decides what runs.

``launch``: upsert the grid's trials, recover dead attempts, schedule every trial
that is not completed. ``resume``: recover and reschedule interrupted / stale (and,
on request, failed) trials from the store alone. Each Tune trial runs
``pipeline.worker.run_attempt`` for one trial id; the store, not Ray's experiment
folder, records what happened.

Tune is configured for many short trials: actors are reused (the dataset and the
store connection stay warm in each worker), Tune's per-trial loggers and its
periodic experiment snapshots are off (the store already holds everything), and
each trial reports to Tune once, at its end.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cre import TrialSpec
from db import Store
from pipeline.worker import HOST, WorkerConfig, run_attempt

log = logging.getLogger("cre.runner")

# Tune settings for many short trials; read by Tune when the controller starts.
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no per-trial CSV/JSON/TensorBoard files
    "TUNE_GLOBAL_CHECKPOINT_S": "1e9",  # no periodic experiment snapshots: the store is the truth
    "TUNE_RESULT_BUFFER_LENGTH": "1",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",  # Ctrl-C reaches us as KeyboardInterrupt
    "TUNE_WARN_INSUFFICENT_RESOURCE_THRESHOLD_S": "1e9",
    "RAY_AIR_NEW_OUTPUT": "0",
}
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class LaunchError(RuntimeError):
    """Ray cannot be started or reached; the message is one line."""


@dataclass(frozen=True)
class LaunchConfig:
    """Everything ``launch`` / ``resume`` need, built by the CLI from flags and environment."""

    store_url: str
    artifacts: str
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001": join a cluster
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractional GPUs share a card between small trials
    max_concurrent: int | None = None
    max_failures: int = 2  # Ray retries of a trial whose worker died (resumed from its last checkpoint)
    data_dir: str | None = None
    device: str = "auto"
    checkpoint_interval_s: float = 30.0
    heartbeat_s: float = 10.0
    stale_after_s: float = 120.0  # a running attempt without heartbeat this long is dead
    num_cpus: int | None = None  # local Ray only: CPUs to use (default: all)
    num_gpus: int | None = None  # local Ray only
    progress: bool = True
    verbose: bool = False  # show worker logs


@dataclass
class RunSummary:
    """What one launch / resume did."""

    sweep: str | None
    run_id: str
    scheduled: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    nodes: set[str] = field(default_factory=set)  # Ray node ids that ran trials
    counts: dict[str, int] = field(default_factory=dict)  # store counts afterwards
    seconds: float = 0.0
    interrupted: bool = False


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- recovery
def _pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie (a killed, unreaped worker is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def recover(store: Store, cfg: LaunchConfig, sweep: str | None) -> list[str]:
    """Mark dead attempts interrupted: this host's whose process is gone, and any without a heartbeat."""
    dead = [
        a for a in store.running_attempts(sweep)
        if a.host == HOST and a.pid is not None and not _pid_alive(a.pid)
    ]
    ids = []
    for a in dead:
        store.interrupt_attempt(a.trial_id, a.attempt, f"process {a.pid} on {a.host} is gone")
        ids.append(a.trial_id)
    ids += store.mark_stale(cfg.stale_after_s, sweep=sweep)
    return ids


# --------------------------------------------------------------------------- entry points
def launch(grid, cfg: LaunchConfig, *, out=None) -> RunSummary:  # noqa: ANN001 - pipeline.grid.Grid
    """Upsert the grid's trials, recover dead attempts, and train every trial not completed."""
    out = out or sys.stderr
    if cfg.address:
        _probe_address(cfg.address)  # before the store is touched
    store = Store(cfg.store_url)
    store.create_sweep(grid.name, grid.text)
    added = store.upsert_trials(grid.name, list(grid.specs))
    print(f"sweep {grid.name}: {len(grid.specs)} trials ({added.added} new) in {store.url}", file=out)
    recovered = recover(store, cfg, grid.name)
    if recovered:
        print(f"recovered {len(recovered)} interrupted trial(s)", file=out)
    _note_busy(store, cfg, grid.name, out)
    todo = store.trials(sweep=grid.name, status=("pending", "interrupted"))
    return schedule(store, [t.spec for t in todo], cfg, sweep=grid.name, out=out)


def resume(cfg: LaunchConfig, *, sweep: str | None = None, include_failed: bool = False, out=None) -> RunSummary:
    """Reschedule interrupted and stale trials (and failed ones with ``include_failed``)."""
    out = out or sys.stderr
    if cfg.address:
        _probe_address(cfg.address)
    store = Store(cfg.store_url)
    if sweep is not None and store.get_sweep(sweep) is None:
        known = ", ".join(s.name for s in store.list_sweeps()) or "none"
        raise ValueError(f"sweep {sweep!r} is not in the store; sweeps: {known}")
    recover(store, cfg, sweep)
    if include_failed:
        failed = [t.trial_id for t in store.trials(sweep=sweep, status="failed")]
        store.reset_trials(failed, to="pending")
        if failed:
            print(f"rescheduling {len(failed)} failed trial(s)", file=out)
    _note_busy(store, cfg, sweep, out)
    todo = store.trials(sweep=sweep, status=("pending", "interrupted"))
    return schedule(store, [t.spec for t in todo], cfg, sweep=sweep, out=out)


def _note_busy(store: Store, cfg: LaunchConfig, sweep: str | None, out) -> None:  # noqa: ANN001
    """Say so when live-looking attempts keep trials from this run (another launch, or a fresh crash)."""
    busy = store.running_attempts(sweep)
    if busy:
        print(f"{len(busy)} trial(s) are running elsewhere (another launch, or workers whose heartbeat is not "
              f"yet {cfg.stale_after_s:g}s old) and are left to them; `cre-pipeline resume` takes over any "
              f"that stop", file=out)


# --------------------------------------------------------------------------- Ray Tune
def _trainable(config: dict[str, Any], specs: dict[str, dict], worker: WorkerConfig) -> None:
    """The Tune function trainable: one attempt of one trial, one report at the end."""
    from ray import tune

    import ray

    outcome = run_attempt(TrialSpec.from_dict(specs[config["trial_id"]]), worker)
    tune.report({**outcome.report(), "node": ray.get_runtime_context().get_node_id()})


def start_ray(cfg: LaunchConfig) -> bool:
    """Start (or join) Ray unless it already runs in this process; True when we started it."""
    import ray

    if ray.is_initialized():
        return False
    for k, v in TUNE_ENV.items():
        os.environ.setdefault(k, v)
    env = {k: v for k, v in TUNE_ENV.items()}
    pythonpath = os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=cfg.verbose,
                                  logging_level=logging.INFO if cfg.verbose else logging.WARNING)
    if cfg.address:
        kwargs["address"] = cfg.address
    else:
        # A new local Ray (never an instance someone else started, nor RAY_ADDRESS); it inherits
        # this environment, so workers import this checkout's packages.
        os.environ["PYTHONPATH"] = pythonpath
        kwargs.update(address="local", num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus)
        kwargs["object_store_memory"] = 256 * 1024 * 1024
    kwargs["runtime_env"] = {"env_vars": env}
    if cfg.address:
        _probe_address(cfg.address)
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure to start or reach Ray is one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = f"join the Ray cluster at {cfg.address}" if cfg.address else "start a local Ray"
        raise LaunchError(f"cannot {where}: {first[:300]}") from None
    return True


def _probe_address(address: str, timeout_s: float = 10.0) -> None:
    """Fail fast (ray.init retries an unreachable GCS for minutes): a TCP connect to host:port."""
    if address == "auto":
        return  # Ray finds the address itself and fails at once when there is none
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"--address must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise LaunchError(f"cannot join the Ray cluster at {address}: {exc.strerror or exc}") from None


def run_tune(
    trainable: Callable,
    trial_ids: Sequence[str],
    cfg: LaunchConfig,
    *,
    name: str,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Run one Tune trial per id with the launch's resources; returns Tune's ResultGrid."""
    from ray import tune

    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    storage = tempfile.mkdtemp(prefix="cre-tune-")
    # With the per-trial loggers off, Tune's result summary finds no result files and warns once per
    # trial; the metrics it needs come from the last report, and the store holds the rest.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"trial_id": tune.grid_search(list(trial_ids))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=cfg.max_concurrent,
                reuse_actors=True,
                trial_name_creator=lambda t: f"cre-{t.config['trial_id'][:12]}",
                trial_dirname_creator=lambda t: f"cre-{t.config['trial_id'][:12]}",
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                verbose=0,
                callbacks=list(callbacks),
            ),
        )
        return tuner.fit()
    finally:
        shutil.rmtree(storage, ignore_errors=True)


class Progress:
    """A live progress line (done / running / failed, ETA) fed by Tune callbacks."""

    def __init__(self, total: int, out=None, enabled: bool = True) -> None:  # noqa: ANN001
        self.total, self.out, self.enabled = total, out or sys.stderr, enabled
        self.outcomes: dict[str, int] = {}
        self.running = 0
        self.start = time.monotonic()
        self.last_print = 0.0
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its run config (with the callbacks) into the experiment folder;
        # the stream and the lock stay behind, and a restored copy prints nothing.
        state = dict(self.__dict__)
        state.update(out=None, lock=None, enabled=False, tty=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def callback(self):  # noqa: ANN201 - a ray.tune.Callback
        from ray.tune import Callback

        progress = self

        class _Cb(Callback):
            def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
                with progress.lock:
                    progress.running += 1
                progress.show()

            def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
                status = result.get("outcome")
                if status:
                    with progress.lock:
                        progress.outcomes[status] = progress.outcomes.get(status, 0) + 1

            def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
                with progress.lock:
                    progress.running = max(0, progress.running - 1)
                progress.show()

            def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
                with progress.lock:
                    progress.running = max(0, progress.running - 1)
                    progress.outcomes["crashed"] = progress.outcomes.get("crashed", 0) + 1
                progress.show()

            def on_step_end(self, iteration, trials, **info):  # noqa: ANN001
                progress.show()

        return _Cb()

    def line(self) -> str:
        done = sum(self.outcomes.values())
        elapsed = time.monotonic() - self.start
        eta = "--:--"
        if 0 < done < self.total:
            eta = _clock(elapsed / done * (self.total - done))
        elif done >= self.total:
            eta = "0:00"
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        extra = "".join(f"  {k} {v}" for k, v in sorted(self.outcomes.items()) if k not in ("completed",))
        return (f"[{bar}] {done}/{self.total} done  {self.outcomes.get('completed', 0)} completed  "
                f"{self.running} running{extra}  elapsed {_clock(elapsed)}  ETA {eta}")

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        every = 0.5 if self.tty else 15.0
        if not force and now - self.last_print < every:
            return
        self.last_print = now
        text = self.line()
        if self.tty:
            self.out.write("\r" + text + "\033[K")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.show(force=True)
            if self.tty:
                self.out.write("\n")
                self.out.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Interrupted(Exception):
    pass


def schedule(
    store: Store, specs: Sequence[TrialSpec], cfg: LaunchConfig, *, sweep: str | None, out=None  # noqa: ANN001
) -> RunSummary:
    """Train ``specs`` with Ray Tune; Ctrl-C / SIGTERM stop cleanly, marking running attempts interrupted."""
    out = out or sys.stderr
    run_id = new_run_id()
    summary = RunSummary(sweep, run_id, scheduled=len(specs))
    t0 = time.monotonic()
    if not specs:
        print("nothing to train: every trial is completed, running elsewhere or failed "
              "(`cre-pipeline resume --include-failed` retries failed ones)", file=out)
        summary.counts = store.counts(sweep)
        return summary
    worker = WorkerConfig(
        store_url=cfg.store_url, artifacts=cfg.artifacts, run_id=run_id, data_dir=cfg.data_dir,
        device=cfg.device if cfg.gpus_per_trial > 0 or cfg.device != "auto" else "cpu",
        threads=max(1, int(cfg.cpus_per_trial)), checkpoint_interval_s=cfg.checkpoint_interval_s,
        heartbeat_s=cfg.heartbeat_s,
    )
    print(f"training {len(specs)} trial(s), run {run_id}", file=out)
    from ray import tune

    progress = Progress(len(specs), out=out, enabled=cfg.progress)
    started = start_ray(cfg)
    previous_term = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        trainable = tune.with_parameters(
            _trainable, specs={s.spec_id: s.to_dict() for s in specs}, worker=worker
        )
        results = run_tune(trainable, [s.spec_id for s in specs], cfg, name=f"{sweep or 'resume'}-{run_id}",
                           callbacks=[progress.callback()])
        for r in results:
            status = (r.metrics or {}).get("outcome") or "crashed"
            if (r.metrics or {}).get("node"):
                summary.nodes.add(r.metrics["node"])
            summary.outcomes[status] = summary.outcomes.get(status, 0) + 1
    except (KeyboardInterrupt, _Interrupted):
        summary.interrupted = True
        print("\ninterrupted: stopping workers and marking running attempts interrupted", file=out)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous_term)
        progress.close()
        if started:
            import ray

            ray.shutdown()
        # Attempts of this run still marked running belong to workers that are gone now.
        store.interrupt_running(sweep=None, run_id=run_id, reason="launch stopped")
    summary.counts = store.counts(sweep)
    summary.seconds = time.monotonic() - t0
    return summary


def _raise_interrupt(signum, frame):  # noqa: ANN001
    raise _Interrupted()
