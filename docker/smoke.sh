#!/usr/bin/env bash
# Smoke test of docker/compose.yaml, for a machine with Docker and Compose v2.18+.
#
# Builds the image, starts PostgreSQL, a Ray head and CRE_SMOKE_WORKERS workers
# in a throw-away compose project, launches grids/quickstart.yaml from the head
# against PostgreSQL (--address auto), then checks:
#   * `cre-pipeline status --json`: every trial of the sweep completed;
#   * the store: every trial ran on a worker container (not the head), spread
#     over more than one worker when there are several, and its best checkpoint
#     reads back from the shared artifact volume with the sha256 the store holds;
#   * a second launch of the same grid trains nothing.
# The stack and its volumes are removed at the end, whatever happens (trap).
#
#   bash docker/smoke.sh                          # CUDA image + GPU workers if nvidia-smi works here, else CPU
#   CRE_SMOKE_VARIANT=cpu bash docker/smoke.sh    # force the CPU image (docker/compose.cpu.yaml)
#   CRE_SMOKE_WORKERS=3 CRE_SMOKE_WORKER_CPUS=1 bash docker/smoke.sh
#
# It takes a few minutes once the image is built (the first build downloads
# PyTorch: several GB for the CUDA image).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
variant=${CRE_SMOKE_VARIANT:-auto}
workers=${CRE_SMOKE_WORKERS:-2}
join_timeout_s=${CRE_SMOKE_JOIN_TIMEOUT:-300}
sweep=quickstart
project=cre-smoke-$$  # its own containers, network and volumes: a running stack is never touched

log() { printf 'smoke: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

if ! docker compose version >/dev/null 2>&1; then
  die "needs Docker with the Compose v2 plugin (\`docker compose version\` failed)"
fi
if [[ $variant == auto ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then variant=cuda; else variant=cpu; fi
fi
files=(-f "$here/compose.yaml")
case $variant in
  cuda) trial_flags=(--gpus-per-trial 0.25) ;;
  cpu) files+=(-f "$here/compose.cpu.yaml"); trial_flags=(--gpus-per-trial 0) ;;
  *) die "CRE_SMOKE_VARIANT must be auto, cuda or cpu, got '$variant'" ;;
esac
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "CRE_SMOKE_WORKERS must be a positive integer, got '$workers'"

# A few CPUs per worker so that the trials spread over the workers; the
# dashboard on any free port of 127.0.0.1 (a running stack may hold 8265).
export RAY_WORKER_CPUS=${CRE_SMOKE_WORKER_CPUS:-2}
export RAY_DASHBOARD_PORT=

compose() { docker compose -p "$project" "${files[@]}" "$@"; }
on_head() { compose exec -T ray-head "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)); then
    log "exit $rc; the stack's last log lines:"
    compose logs --no-color --tail=40 >&2 || true
  fi
  log "removing the stack and its volumes"
  compose down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "building and starting: $variant image, $workers worker(s) of $RAY_WORKER_CPUS CPUs, project $project"
compose up -d --build --wait --scale ray-worker="$workers"
log "dashboard at http://$(compose port ray-head 8265)"

log "waiting for $workers worker(s) to join the Ray head"
deadline=$((SECONDS + join_timeout_s))
until on_head python - "$workers" <<'EOF'
import sys

import ray

ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
workers = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
sys.exit(0 if len(workers) >= int(sys.argv[1]) else 1)
EOF
do
  ((SECONDS < deadline)) || die "$workers worker(s) did not join the head within ${join_timeout_s}s"
  sleep 5
done

log "launching grids/quickstart.yaml from the head (${trial_flags[*]})"
on_head cre-pipeline launch --grid grids/quickstart.yaml --address auto --no-progress "${trial_flags[@]}"

log "checking cre-pipeline status --json"
on_head cre-pipeline status --sweep "$sweep" --json | on_head python -c '
import json, sys
info = json.load(sys.stdin)
counts, total = info["counts"], info["total"]
print(f"status: {total} trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
if total == 0 or counts.get("completed", 0) != total:
    failures = "; ".join(f["error"] or "?" for f in info["recent_failures"][:3]) or "none"
    sys.exit(f"not every trial completed: {counts}; recent failures: {failures}")
'

log "checking where the trials ran and their checkpoints on the shared volume"
on_head python - "$sweep" "$workers" <<'EOF'
import socket
import sys

from db import Store, default_store_url
from pipeline.artifacts import ArtifactRoot

sweep, n_workers = sys.argv[1], int(sys.argv[2])
store = Store(default_store_url())
trials = store.trials(sweep)
hosts = set()
for t in trials:
    hosts.update(a.host for a in store.attempts(t.trial_id) if a.status == "completed")
    best = store.get_checkpoint(t.trial_id, "best")
    if best is None:
        sys.exit(f"trial {t.trial_id[:12]} has no best checkpoint")
    ArtifactRoot.read(best.uri, best.sha256)  # raises when missing or when the sha256 differs
if socket.gethostname() in hosts:
    sys.exit(f"trials ran on the head ({socket.gethostname()}), which offers no CPUs")
if len(hosts) < min(2, n_workers):
    sys.exit(f"every trial ran on one worker ({', '.join(hosts)}) although {n_workers} joined")
print(f"{len(trials)} trials ran on {len(hosts)} worker(s); every best checkpoint read back "
      f"from the shared artifact volume with its sha256", file=sys.stderr)
EOF

log "launching the same grid again: nothing may be trained"
out=$(on_head cre-pipeline launch --grid grids/quickstart.yaml --address auto --no-progress "${trial_flags[@]}" 2>&1)
grep -q "nothing to train" <<<"$out" || die "the second launch trained something: $out"

log "OK"
