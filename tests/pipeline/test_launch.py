"""The sweep pipeline end to end: Ray Tune + store + artifacts, killed and resumed."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from db import Store
from pipeline.cli import main

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]

GRID = """
name: {name}
defaults: {{dataset: synthetic, batch_size: 256, epochs: {epochs}}}
seeds: [0, 1]
experiments:
  - model: fc-small
    latent_dim: [4, 8]
    lam: [0.0, 1.0]
{extra}"""


def write_grid(tmp_path: Path, name="t", epochs=2, extra="") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(GRID.format(name=name, epochs=epochs, extra=extra))
    return path


def cli(*args, env=None):
    res = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return res


def common(store_url, tmp_path):
    return ["--store", store_url, "--artifacts", str(tmp_path / "artifacts"), "--num-cpus", "2", "--no-progress",
            "--checkpoint-interval", "0"]


def epochs_exactly_once(store: Store, trial) -> bool:
    rows = store.epochs(trial.trial_id)
    return [r.epoch for r in rows] == list(range(1, trial.spec.epochs + 1))


def test_launch_relaunch_failure_and_resume_include_failed(tmp_path, monkeypatch):
    """One Ray session per launch: a grid with a trial that fails, relaunch trains nothing, then fix and resume."""
    monkeypatch.setenv("CRE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    data = tmp_path / "data"
    # one trial needs MNIST, which is not there yet: it must fail while the others complete
    grid = write_grid(tmp_path, extra="  - {model: fc-small, dataset: mnist, latent_dim: 3, lam: 0.5, epochs: 2}\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["launch", "--grid", str(grid), "--data-dir", str(data)] + common(url, tmp_path)
    res = cli(*args)
    assert res.exit_code == 0, res.output
    store = Store(url)
    counts = store.counts("t")
    assert counts["completed"] == 8 and counts["failed"] == 2, counts
    failed = store.trials("t", status="failed")
    assert all("dataset mnist not found" in t.last_error for t in failed)
    attempt = store.attempts(failed[0].trial_id)[-1]
    assert attempt.status == "failed" and "Traceback" in attempt.traceback
    for t in store.trials("t", status="completed"):
        assert epochs_exactly_once(store, t)
        best = store.get_checkpoint(t.trial_id, "best")
        assert best is not None and best.epoch == t.best_epoch and Path(best.uri).is_file()
        assert t.best_test_loss == min(r.test_loss for r in store.epochs(t.trial_id))
    n_epochs = sum(len(store.epochs(t.trial_id)) for t in store.trials("t"))

    # the same grid again: nothing completed is trained again, the failed trials stay failed
    res = cli(*args)
    assert res.exit_code == 0 and "nothing to train" in res.output
    assert sum(len(store.epochs(t.trial_id)) for t in store.trials("t")) == n_epochs
    assert all(len(store.attempts(t.trial_id)) == 1 for t in store.trials("t"))

    # provide the data and retry the failed ones
    write_mnist(data / "MNIST" / "raw")
    res = cli("resume", "--sweep", "t", "--include-failed", "--data-dir", str(data), *common(url, tmp_path))
    assert res.exit_code == 0, res.output
    assert store.counts("t")["completed"] == 10
    for t in store.trials("t"):
        assert epochs_exactly_once(store, t)
    again = store.get_trial(failed[0].trial_id)
    assert again.attempts == 2 and [a.status for a in store.attempts(again.trial_id)] == ["failed", "completed"]

    # status shows it all
    res = cli("status", "--store", url, "--sweep", "t", "--json")
    info = json.loads(res.stdout)
    assert info["counts"]["completed"] == 10 and info["total"] == 10
    assert {r["model"] for r in info["by_model_dataset"]} == {"fc-small"}
    res = cli("status", "--store", url)
    assert res.exit_code == 0 and "completed 10" in res.output


def write_mnist(folder: Path, n_train=64, n_test=32) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, shape in (("train-images-idx3-ubyte", (n_train, 28, 28)), ("train-labels-idx1-ubyte", (n_train,)),
                        ("t10k-images-idx3-ubyte", (n_test, 28, 28)), ("t10k-labels-idx1-ubyte", (n_test,))):
        arr = rng.integers(0, 256 if len(shape) == 3 else 10, shape, dtype=np.uint8)
        header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        with gzip.open(folder / f"{name}.gz", "wb") as fh:
            fh.write(header + arr.tobytes())


def test_bad_grid_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nexperiments:\n  - {model: fc-small, dataset: digits, latent_dim: 3, lam: 7}\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = CliRunner().invoke(main, ["launch", "--grid", str(bad), "--store", url])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"Error: {bad}: experiment 1 (with lam=7): lam must be in [0, 1], got 7.0"]
    assert not (tmp_path / "r.db").exists()
    res = CliRunner().invoke(main, ["launch", "--grid", str(tmp_path / "missing.yaml"), "--store", url])
    assert res.exit_code == 2 and "grid file not found" in res.output


def _wait_for(predicate, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def ray_tmp():
    """A short Ray temp dir (AF_UNIX socket paths must stay under 108 bytes) that names this test's processes."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="crer", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _launch_process(grid, url, tmp_path, log, ray_tmp):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "launch", "--grid", str(grid), *common(url, tmp_path)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _running_epochs(store: Store, sweep: str) -> int:
    return sum(len(store.epochs(t.trial_id)) for t in store.trials(sweep, status="running"))


def test_kill_9_then_relaunch_resumes_from_last_checkpoint(tmp_path, ray_tmp):
    grid = write_grid(tmp_path, name="k", epochs=40)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with open(tmp_path / "launch1.log", "w") as log:
        proc = _launch_process(grid, url, tmp_path, log, ray_tmp)
        store = Store(url)
        try:
            _wait_for(lambda: store.get_sweep("k") is not None and _running_epochs(store, "k") >= 6, 120,
                      "running trials with epochs")
        finally:
            _kill_9_launch(proc, ray_tmp)
    killed = store.trials("k", status="running")
    assert killed, "the kill should leave running attempts behind"
    with_checkpoint = [t for t in killed if store.get_checkpoint(t.trial_id, "last") is not None]
    assert with_checkpoint

    res = CliRunner().invoke(main, ["launch", "--grid", str(grid), *common(url, tmp_path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    left = {t.trial_id[:8]: [(a.status, a.pid, a.start_epoch) for a in store.attempts(t.trial_id)]
            for t in store.trials("k") if t.status != "completed"}
    assert store.counts("k")["completed"] == 8, (left, res.output)
    for t in store.trials("k"):
        assert epochs_exactly_once(store, t), t.trial_id
    for t in with_checkpoint:
        attempts = store.attempts(t.trial_id)
        assert attempts[0].status == "interrupted"
        assert attempts[-1].status == "completed" and attempts[-1].start_epoch > 1


def _signal_all(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _kill_9_launch(proc, ray_tmp) -> None:
    """kill -9 the launch: its driver and every Ray process, frozen first so none can spawn a survivor."""
    family: set[int] = set()
    for _ in range(20):  # SIGSTOP the tree until it stops growing (raylet may be starting a worker)
        found = set(_ray_processes(ray_tmp, proc.pid)) | {proc.pid}
        _signal_all(found - family, signal.SIGSTOP)
        if found <= family:
            break
        family |= found
    family |= set(_ray_processes(ray_tmp, proc.pid))  # a last look, everything stopped
    os.killpg(proc.pid, signal.SIGKILL)
    _signal_all(family, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in family - {proc.pid}):
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _ray_processes(temp_dir: Path, root_pid: int) -> list[int]:
    """The launch's Ray processes: descendants of the driver, and any whose command line names its Ray temp dir."""
    parents: dict[int, int] = {}
    named = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(temp_dir) in cmd:
            named.add(int(entry.name))
    family = {root_pid}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in family and pid not in family:
                family.add(pid)
                changed = True
    return sorted((family | named) - {root_pid, os.getpid()})


def test_worker_killed_mid_trial_is_retried_by_ray_from_its_last_checkpoint(tmp_path, ray_tmp):
    """kill -9 of one Ray worker: Tune retries the trial in the same launch, which resumes where it stopped."""
    grid = write_grid(tmp_path, name="w", epochs=60)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(url)
    with open(tmp_path / "launch.log", "w") as log:
        proc = _launch_process(grid, url, tmp_path, log, ray_tmp)
        try:
            def victim():
                if store.get_sweep("w") is None:
                    return None
                for a in store.running_attempts("w"):
                    if len(store.epochs(a.trial_id)) >= 5 and store.get_checkpoint(a.trial_id, "last"):
                        return a
                return None

            _wait_for(lambda: victim() is not None, 120, "a running trial with a checkpoint")
            attempt = victim()
            os.kill(attempt.pid, signal.SIGKILL)
            rc = proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                _kill_9_launch(proc, ray_tmp)
    output = (tmp_path / "launch.log").read_text()
    assert rc == 0, output
    assert store.counts("w")["completed"] == 8, output
    for t in store.trials("w"):
        assert epochs_exactly_once(store, t)
    attempts = store.attempts(attempt.trial_id)
    assert [a.status for a in attempts] == ["interrupted", "completed"]
    assert attempts[1].run_id == attempts[0].run_id  # the same launch took it over
    assert attempts[1].start_epoch > 1 and attempts[1].pid != attempt.pid


def test_ctrl_c_marks_running_attempts_interrupted(tmp_path, ray_tmp):
    grid = write_grid(tmp_path, name="c", epochs=200)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with open(tmp_path / "launch.log", "w") as log:
        proc = _launch_process(grid, url, tmp_path, log, ray_tmp)
        store = Store(url)
        try:
            _wait_for(lambda: store.get_sweep("c") is not None and _running_epochs(store, "c") >= 2, 120,
                      "running trials")
            os.kill(proc.pid, signal.SIGINT)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    output = (tmp_path / "launch.log").read_text()
    assert rc == 130, output
    assert "interrupted" in output
    counts = store.counts("c")
    assert counts["running"] == 0 and counts["interrupted"] >= 1, counts


def test_two_node_cluster_against_postgresql(tmp_path, pg_url):
    """A sweep on a two-node ray.cluster_utils.Cluster, recording into PostgreSQL."""
    import ray
    from ray.cluster_utils import Cluster

    from pipeline.grid import load_grid
    from pipeline.runner import LaunchConfig, launch

    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address)
        cfg = LaunchConfig(store_url=pg_url, artifacts=str(tmp_path / "shared-artifacts"), address=cluster.address,
                           checkpoint_interval_s=0, progress=False)
        summary = launch(load_grid(write_grid(tmp_path, name="pg", epochs=30)), cfg)  # long enough for both nodes to start a worker
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert summary.outcomes == {"completed": 8}
    assert len(summary.nodes) == 2, summary.nodes
    store = Store(pg_url)
    assert store.counts("pg")["completed"] == 8
    for t in store.trials("pg"):
        assert epochs_exactly_once(store, t)
