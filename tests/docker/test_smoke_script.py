"""docker/smoke.sh without Docker: its syntax, and its logic run against a stand-in `docker`.

The stand-in records every call and answers `docker compose ...`: `up`, `down`,
`logs` and `port` succeed without doing anything; `exec SERVICE CMD` runs CMD
here (the smoke test's own Python checks run for real, against a SQLite store
prepared by the test), except that the "have the workers joined" check answers
yes, `cre-pipeline launch` prints $FAKE_LAUNCH_OUTPUT instead of training, and
`cre-pipeline status --json` calls the function behind it directly unless
$FAKE_REAL_CLI is set (the CLI's imports take seconds; the good run uses it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from db import Store
from docker_parse import ROOT, parse_cli
from pipeline.artifacts import ArtifactRoot

SMOKE = ROOT / "docker" / "smoke.sh"

FAKE_DOCKER = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$FAKE_DOCKER_LOG"
[[ $1 == compose ]] || exit 1
shift
if [[ $1 == version ]]; then [[ -z ${FAKE_NO_COMPOSE:-} ]]; exit; fi
while [[ $1 == -p || $1 == -f ]]; do shift 2; done
sub=$1; shift
if [[ ${FAKE_FAIL:-} == "$sub" ]]; then echo "fake docker: $sub failed" >&2; exit 1; fi
case $sub in
  up|down|logs) exit 0 ;;
  port) echo 127.0.0.1:49999 ;;
  exec)
    [[ $1 == -T ]] && shift
    shift  # the service
    if [[ $1 == python && $2 == - && $3 =~ ^[0-9]+$ ]]; then cat >/dev/null; exit 0; fi  # workers joined
    if [[ $1 == cre-pipeline && $2 == launch ]]; then echo "${FAKE_LAUNCH_OUTPUT:-}"; exit "${FAKE_LAUNCH_RC:-0}"; fi
    if [[ $1 == cre-pipeline && $2 == status && -z ${FAKE_REAL_CLI:-} ]]; then  # what `status --json` runs
      exec "$PYTHON" -c '
import json, sys
from db import Store, default_store_url
from pipeline.status import sweep_status
print(json.dumps(sweep_status(Store(default_store_url()), sys.argv[sys.argv.index("--sweep") + 1]), default=str))
' "$@"
    fi
    if [[ $1 == cre-pipeline ]]; then shift; exec "$PYTHON" -m pipeline.cli "$@"; fi
    if [[ $1 == python ]]; then shift; exec "$PYTHON" "$@"; fi
    exec "$@" ;;
  *) echo "fake docker: unexpected compose $sub" >&2; exit 1 ;;
esac
"""


def test_bash_syntax_and_strict_mode():
    proc = subprocess.run(["bash", "-n", str(SMOKE)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    code = [line for line in SMOKE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert code[0] == "set -euo pipefail"
    assert re.search(r"^trap cleanup EXIT$", SMOKE.read_text(), re.M)


def test_launches_the_quickstart_from_the_head_with_address_auto():
    """Every `on_head cre-pipeline ...` line parses with the real CLI (the bash array holds --gpus-per-trial N)."""
    lines = re.findall(r"\bon_head cre-pipeline ([^|\n]*)", SMOKE.read_text())
    commands = [[a for a in shlex.split(line) if not re.fullmatch(r"2>&1\)?", a)] for line in lines]
    launches = [c for c in commands if c[0] == "launch"]
    assert len(launches) == 2
    for argv in launches:
        assert argv == ["launch", "--grid", "grids/quickstart.yaml", "--address", "auto", "--no-progress",
                        '${trial_flags[@]}']
        assert parse_cli([*argv[:-1], "--gpus-per-trial", "0.25"]).params["address"] == "auto"
    assert ["status", "--sweep", "$sweep", "--json"] in commands
    assert parse_cli(["status", "--sweep", "quickstart", "--json"]).params["as_json"] is True


@pytest.fixture
def world(tmp_path):
    """A stand-in docker on PATH, and a store shaped like the end of a good smoke run (2 workers)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path), "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT), "CRE_STORE": url, "CRE_SMOKE_VARIANT": "cpu", "CRE_SMOKE_WORKERS": "2",
        "CRE_SMOKE_JOIN_TIMEOUT": "5", "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "FAKE_LAUNCH_OUTPUT": "nothing to train: every trial is completed",
    }
    store = Store(url)
    artifacts = ArtifactRoot.open(tmp_path / "artifacts")
    from cre import TrialSpec

    specs = [TrialSpec(model="fc-small", dataset="digits", latent_dim=3, lam=0.5, epochs=1, seed=s) for s in range(3)]
    store.upsert_trials("quickstart", specs)
    return {"env": env, "store": store, "artifacts": artifacts, "specs": specs, "tmp": tmp_path}


def complete(world, spec, host):
    store, artifacts = world["store"], world["artifacts"]
    attempt = store.claim(spec.spec_id, host=host, pid=123, run_id="run")
    uri = artifacts.uri_for(spec.spec_id, "best")
    sha, size = artifacts.write(uri, b"checkpoint of " + spec.spec_id.encode())
    store.record_checkpoint(spec.spec_id, "best", 1, uri, sha, size)
    store.finish_attempt(spec.spec_id, attempt.attempt)


def run_smoke(world, **env):
    proc = subprocess.run(["bash", str(SMOKE)], env={**world["env"], **env}, capture_output=True, text=True,
                          timeout=180, cwd=ROOT)
    log_file = world["tmp"] / "docker.log"
    calls = log_file.read_text().splitlines() if log_file.exists() else []
    return proc, calls


def assert_torn_down(calls):
    projects = {m.group(1) for c in calls for m in [re.search(r"-p (cre-smoke-\d+)", c)] if m}
    assert len(projects) == 1, calls
    assert calls[-1].startswith(f"compose -p {projects.pop()} ") and " down --volumes" in calls[-1]


def test_good_run_passes_and_tears_down(world):
    complete(world, world["specs"][0], "worker-a")
    complete(world, world["specs"][1], "worker-b")
    complete(world, world["specs"][2], "worker-a")
    proc, calls = run_smoke(world, FAKE_REAL_CLI="1")
    assert proc.returncode == 0, proc.stderr
    assert "smoke: OK" in proc.stderr
    assert "status: 3 trials: pending 0, running 0, completed 3, failed 0, interrupted 0" in proc.stderr
    assert "3 trials ran on 2 worker(s)" in proc.stderr
    up = next(c for c in calls if " up " in c)
    assert "compose.cpu.yaml" in up and "--build" in up and "--wait" in up and "--scale ray-worker=2" in up
    launches = [c for c in calls if "cre-pipeline launch" in c]
    assert len(launches) == 2 and all("--address auto" in c and "--gpus-per-trial 0" in c for c in launches)
    assert_torn_down(calls)


def test_failed_trial_fails_the_smoke(world):
    complete(world, world["specs"][0], "worker-a")
    complete(world, world["specs"][1], "worker-b")
    bad = world["store"].claim(world["specs"][2].spec_id, host="worker-b", pid=1, run_id="run")
    world["store"].fail_attempt(world["specs"][2].spec_id, bad.attempt, "DatasetUnavailable: no digits")
    proc, calls = run_smoke(world)
    assert proc.returncode != 0
    assert "not every trial completed" in proc.stderr and "DatasetUnavailable: no digits" in proc.stderr
    assert any(" logs " in c for c in calls)
    assert_torn_down(calls)


def test_trials_on_a_single_worker_fail_the_smoke(world):
    for spec in world["specs"]:
        complete(world, spec, "worker-a")
    proc, calls = run_smoke(world)
    assert proc.returncode != 0 and "every trial ran on one worker (worker-a) although 2 joined" in proc.stderr
    assert_torn_down(calls)


def test_corrupt_checkpoint_fails_the_smoke(world):
    for spec, host in zip(world["specs"], ("worker-a", "worker-b", "worker-a")):
        complete(world, spec, host)
    best = world["store"].get_checkpoint(world["specs"][1].spec_id, "best")
    Path(best.uri).write_bytes(b"tampered")
    proc, calls = run_smoke(world)
    assert proc.returncode != 0 and "sha256 does not match" in proc.stderr
    assert_torn_down(calls)


def test_second_launch_that_trains_fails_the_smoke(world):
    for spec, host in zip(world["specs"], ("worker-a", "worker-b", "worker-a")):
        complete(world, spec, host)
    proc, calls = run_smoke(world, FAKE_LAUNCH_OUTPUT="training 72 trial(s)")
    assert proc.returncode != 0 and "the second launch trained something" in proc.stderr
    assert_torn_down(calls)


def test_failed_up_still_tears_down(world):
    proc, calls = run_smoke(world, FAKE_FAIL="up")
    assert proc.returncode != 0
    assert not any("cre-pipeline" in c for c in calls)
    assert_torn_down(calls)


def test_gpu_variant_uses_the_base_file_and_gpu_shares_and_a_failed_launch_fails(world):
    proc, calls = run_smoke(world, CRE_SMOKE_VARIANT="cuda", FAKE_LAUNCH_RC="1")
    assert proc.returncode == 1
    up = next(c for c in calls if " up " in c)
    assert "compose.yaml" in up and "compose.cpu.yaml" not in up
    (launch,) = [c for c in calls if "cre-pipeline launch" in c]
    assert launch.endswith("cre-pipeline launch --grid grids/quickstart.yaml --address auto --no-progress "
                           "--gpus-per-trial 0.25")
    assert_torn_down(calls)


@pytest.mark.parametrize("env, message", [
    ({"FAKE_NO_COMPOSE": "1"}, "needs Docker with the Compose v2 plugin"),
    ({"CRE_SMOKE_VARIANT": "rocm"}, "CRE_SMOKE_VARIANT must be auto, cuda or cpu, got 'rocm'"),
    ({"CRE_SMOKE_WORKERS": "0"}, "CRE_SMOKE_WORKERS must be a positive integer, got '0'"),
])
def test_bad_setup_stops_before_starting_anything(world, env, message):
    proc, calls = run_smoke(world, **env)
    assert proc.returncode == 1 and message in proc.stderr
    assert not any(" up " in c for c in calls)
