"""Ray Tune scheduling overhead per trial: Tune's defaults next to cre-pipeline's settings.

Runs N trivial trials (each sleeps ``--work`` seconds and reports once) twice in
one run: with a plain ``Tuner`` (Tune's defaults) and through
``pipeline.runner.run_tune`` (actor reuse, no per-trial loggers, no experiment
snapshots). Overhead per trial = (wall time - ideal time) / N, where ideal =
N * work / concurrency. Ray's own start is excluded (it is paid once per launch).

    python benchmarks/ray_overhead.py --trials 100

Last line: ``ray overhead: trials=N defaults_s=... cre_s=... ratio=...``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.runner import LaunchConfig, run_tune, start_ray  # noqa: E402


def trivial(config):  # noqa: ANN001
    from ray import tune

    time.sleep(config["work"])
    tune.report({"outcome": "completed"})


def defaults_run(n: int, work: float, cpus: float) -> float:
    from ray import tune

    storage = tempfile.mkdtemp(prefix="cre-bench-")
    try:
        t0 = time.perf_counter()
        tune.Tuner(
            tune.with_resources(lambda c: trivial({**c, "work": work}), {"cpu": cpus}),
            param_space={"i": tune.grid_search(list(range(n)))},
            run_config=tune.RunConfig(storage_path=storage, name="defaults"),
        ).fit()
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def cre_run(n: int, work: float, cfg: LaunchConfig) -> float:
    t0 = time.perf_counter()
    run_tune(lambda c: trivial({**c, "work": work}), [f"{i:064x}" for i in range(n)], cfg, name="cre")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--work", type=float, default=0.0, help="seconds each trivial trial sleeps")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--skip-defaults", action="store_true", help="only measure cre-pipeline's settings")
    args = ap.parse_args()
    cfg = LaunchConfig(store_url="sqlite://", artifacts=tempfile.gettempdir(), cpus_per_trial=args.cpus_per_trial)
    t0 = time.perf_counter()
    start_ray(cfg)  # sets Tune's environment for the second run; the first run uses a plain Tuner
    import ray

    concurrency = max(1, int(ray.cluster_resources().get("CPU", 1) // args.cpus_per_trial))
    print(f"ray start: {time.perf_counter() - t0:.1f}s, {concurrency} trials at a time")
    ideal = args.trials * args.work / concurrency
    cre_wall = cre_run(args.trials, args.work, cfg)
    cre_per = (cre_wall - ideal) / args.trials
    print(f"cre-pipeline settings: {cre_wall:.2f}s for {args.trials} trials, overhead {cre_per:.3f}s/trial")
    if args.skip_defaults:
        print(f"ray overhead: trials={args.trials} cre_s={cre_per:.3f}")
        return
    # Tune's defaults: undo the environment start_ray set for the tuned run.
    from pipeline.runner import TUNE_ENV

    for k in TUNE_ENV:
        os.environ.pop(k, None)
    d_wall = defaults_run(args.trials, args.work, args.cpus_per_trial)
    d_per = (d_wall - ideal) / args.trials
    print(f"Tune defaults: {d_wall:.2f}s for {args.trials} trials, overhead {d_per:.3f}s/trial")
    print(f"ray overhead: trials={args.trials} defaults_s={d_per:.3f} cre_s={cre_per:.3f} ratio={d_per / cre_per:.1f}")


if __name__ == "__main__":
    main()
