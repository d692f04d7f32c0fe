"""The ``cre-pipeline`` command line. Commands stay thin: parse, build a config, call a library function."""

from __future__ import annotations

import json
import sys

import click

from cre import DATASETS, MASK_VARIANTS, TrialSpec, list_models
from pipeline.cli_store import open_store, resolve_store_url, store_option


class InputError(click.ClickException):
    """Bad input (a spec, a grid file, a flag value): one line on stderr, exit code 2."""

    exit_code = 2


SpecError = InputError


def build_spec(**fields) -> TrialSpec:  # noqa: ANN003
    """A TrialSpec from CLI values; ValueError becomes a one-line usage error (exit 2)."""
    try:
        return TrialSpec(**{k: v for k, v in fields.items() if v is not None or k == "latent_dim"})
    except ValueError as exc:
        raise SpecError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cre-pipeline")
def main() -> None:
    """cre-pipeline: train, store and report the Classification-Reconstruction Encoder study.

    Start with `cre-pipeline launch --grid grids/quickstart.yaml`, watch it with
    `cre-pipeline status`, and draw the figures with `cre-pipeline report`.
    """


@main.command("run-trial")
@click.option("--model", required=True, type=click.Choice(list_models()), help="Registered model variant.")
@click.option("--dataset", required=True, type=click.Choice(sorted(DATASETS)), help="Dataset.")
@click.option("--latent-dim", type=int, default=None, help="n: latent size / embedding width (not for CNN).")
@click.option("--lam", type=float, default=None, help="lambda in [0, 1] (default 0.5).")
@click.option("--epochs", type=int, default=None, help="Training epochs (default 100).")
@click.option("--batch-size", type=int, default=None, help="Batch size (default 512).")
@click.option("--seed", type=int, default=None, help="Seed (default 0).")
@click.option("--lr-encoder", type=float, default=None, help="Encoder learning rate (default 1e-3).")
@click.option("--lr-decoder", type=float, default=None, help="Decoder learning rate (default 1e-3).")
@click.option("--lr-classifier", type=float, default=None, help="Classifier learning rate (default 1e-3).")
@click.option("--dropout", type=float, default=None, help="Dropout2d probability (CNN variants).")
@click.option("--drop-path", type=float, default=None, help="Drop-path rate (ViT variants).")
@click.option("--rotation", type=float, default=None, help="Random rotation augmentation in degrees.")
@click.option("--mask-ratio", type=float, default=None, help="Fraction of patches masked in training (ViT).")
@click.option("--mask-variant", type=click.Choice(MASK_VARIANTS), default=None, help="Masking loss variant.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, envvar="CRE_DATA_DIR",
              help="Folder with the datasets (env CRE_DATA_DIR).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False), default=None,
              help="Write the best epoch's checkpoint (spec, metrics, weights) to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every epoch on stdout.")
def run_trial(data_dir, device, threads, save_path, as_json, **fields) -> None:  # noqa: ANN001
    """Train one trial here, without Ray or a store.

    Prints a progress line per epoch on stderr; with --json, one object
    {"spec_id", "spec", "epochs": [...], "best_epoch"} on stdout.
    """
    from cre import DatasetUnavailable, NonFiniteLossError, Trainer, TrainResult
    from cre.checkpoint import best_payload, save_file

    spec = build_spec(**fields)
    try:
        trainer = Trainer(spec, device=device, data_dir=data_dir, threads=threads)
    except (DatasetUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"trial {spec.spec_id[:12]}  {spec.short()}  on {trainer.device}", err=True)
    best = None
    try:
        while trainer.epoch < spec.epochs:
            m = trainer.run_epoch()
            if trainer.is_best and save_path:
                best = best_payload(trainer)
            click.echo(
                f"epoch {m.epoch:>4}/{spec.epochs}  loss {m.train_loss:.4f}  test loss {m.test_loss:.4f}  "
                f"mse {m.test_mse:.4f}  acc {m.test_acc:.4f}  {m.train_seconds:.2f}s"
                + ("  *" if trainer.is_best else ""),
                err=True,
            )
    except NonFiniteLossError as exc:
        raise click.ClickException(str(exc)) from None
    if save_path and best is not None:
        sha, size = save_file(best, save_path)
        click.echo(f"saved best epoch {best['epoch']} to {save_path} ({size} bytes, sha256 {sha[:12]})", err=True)
    if as_json:
        click.echo(json.dumps(TrainResult(spec, list(trainer.history), trainer.best_epoch).to_dict()))


# --------------------------------------------------------------------------- sweeps
def _load_grid(path: str):  # noqa: ANN202
    from pipeline.grid import GridError, load_grid

    try:
        return load_grid(path)
    except GridError as exc:
        raise InputError(str(exc)) from None


def _launch_options(f):  # noqa: ANN001, ANN202
    options = [
        store_option,
        click.option("--artifacts", default="cre-results/artifacts", envvar="CRE_ARTIFACTS", show_default=True,
                     help="Artifact root for checkpoints: a folder (shared on a cluster) or an fsspec URI (env CRE_ARTIFACTS)."),
        click.option("--address", default=None, help="Ray address: none starts a local Ray; 'auto' or 'ray://host:10001' joins a cluster."),
        click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                     help="CPUs per trial (also torch's thread count)."),
        click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="GPUs per trial; fractions share a GPU (e.g. 0.25 = 4 small trials per GPU)."),
        click.option("--max-concurrent", type=click.IntRange(min=1), default=None, help="At most this many trials at once."),
        click.option("--max-failures", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Ray retries of a trial whose worker or node died; each resumes from the last checkpoint."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None, envvar="CRE_DATA_DIR",
                     help="Folder with the datasets (env CRE_DATA_DIR)."),
        click.option("--checkpoint-interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
                     help="Seconds between last/best checkpoint writes of a trial (0: every epoch; always at the end)."),
        click.option("--stale-after", type=click.FloatRange(min=1), default=120.0, show_default=True,
                     help="Seconds without heartbeat after which a running attempt counts as dead."),
        click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="Local Ray only: CPUs to use (default all)."),
        click.option("--num-gpus", type=click.IntRange(min=0), default=None, help="Local Ray only: GPUs to use (default all)."),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Show the live progress line."),
        click.option("--verbose", is_flag=True, help="Show Ray's and the workers' logs."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _launch_config(store_url, artifacts, address, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures,  # noqa: ANN001, ANN202
                   data_dir, checkpoint_interval, stale_after, num_cpus, num_gpus, progress, verbose):
    from pipeline.artifacts import ArtifactError, ArtifactRoot
    from pipeline.runner import LaunchConfig

    try:
        root = ArtifactRoot.open(artifacts).root
    except ArtifactError as exc:
        raise InputError(str(exc)) from None
    return LaunchConfig(
        store_url=resolve_store_url(store_url), artifacts=root, address=address, cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, max_failures=max_failures, data_dir=data_dir,
        checkpoint_interval_s=checkpoint_interval, stale_after_s=stale_after, num_cpus=num_cpus, num_gpus=num_gpus,
        progress=progress, verbose=verbose,
    )


def _print_summary(summary) -> None:  # noqa: ANN001
    from db import TRIAL_STATUSES

    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())) or "none"
    click.echo(f"run {summary.run_id}: {summary.scheduled} scheduled; outcomes: {outcomes}; {summary.seconds:.1f}s", err=True)
    c = summary.counts
    click.echo("store: " + "  ".join(f"{s} {c.get(s, 0)}" for s in TRIAL_STATUSES), err=True)


def _run_and_report(run, cfg) -> None:  # noqa: ANN001
    """Check the store answers, run a launch/resume, print its summary; exit 130 when interrupted."""
    from pipeline.runner import LaunchError

    open_store(cfg.store_url).close()
    try:
        summary = run()
    except ValueError as exc:  # e.g. an unknown --sweep
        raise InputError(str(exc)) from None
    except LaunchError as exc:
        raise click.ClickException(str(exc)) from None
    _print_summary(summary)
    if summary.interrupted:
        sys.exit(130)


@main.command("launch")
@click.option("--grid", "grid_path", required=True, type=click.Path(dir_okay=False), help="Grid YAML file (see grids/).")
@_launch_options
def launch_cmd(grid_path, **options) -> None:  # noqa: ANN001
    """Train a grid's trials with Ray Tune, recording everything in the store.

    Upserts the grid's trials, then schedules only those not completed:
    launching the same grid again trains nothing that is done and resumes what
    is not (from each trial's last checkpoint). Ctrl-C stops cleanly.
    """
    from pipeline.runner import launch

    grid = _load_grid(grid_path)  # before anything touches the store
    cfg = _launch_config(**options)
    _run_and_report(lambda: launch(grid, cfg), cfg)


@main.command("resume")
@click.option("--sweep", default=None, help="Only this sweep (default: every sweep in the store).")
@click.option("--include-failed", is_flag=True, help="Also retry failed trials.")
@_launch_options
def resume_cmd(sweep, include_failed, **options) -> None:  # noqa: ANN001
    """Reschedule interrupted and stale trials (and failed ones with --include-failed).

    Works from the store alone, no grid file needed: trials whose worker died
    (no heartbeat for --stale-after seconds, or a process gone on this host)
    continue from their last checkpoint.
    """
    from pipeline.runner import resume

    cfg = _launch_config(**options)
    _run_and_report(lambda: resume(cfg, sweep=sweep, include_failed=include_failed), cfg)


@main.command("status")
@store_option
@click.option("--sweep", default=None, help="Only this sweep (default: every trial in the store).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C (or until nothing is pending or running).")
@click.option("--interval", type=click.FloatRange(min=0.2), default=5.0, show_default=True, help="Seconds between refreshes with --watch.")
def status_cmd(store_url, sweep, as_json, watch, interval) -> None:  # noqa: ANN001
    """Show a sweep's progress: counts by status and by model/dataset, recent failures, throughput, ETA."""
    import time

    from pipeline.status import format_status, sweep_status

    store = open_store(store_url)
    if sweep is not None and store.get_sweep(sweep) is None:
        known = ", ".join(s.name for s in store.list_sweeps()) or "none"
        raise InputError(f"--sweep: no sweep named {sweep!r} in the store; sweeps: {known}")
    try:
        while True:
            info = sweep_status(store, sweep)
            if as_json:
                click.echo(json.dumps(info, default=str))
            else:
                if watch:
                    click.echo("\033[2J\033[H", nl=False)
                click.echo(format_status(info))
            active = info["counts"].get("pending", 0) + info["counts"].get("running", 0)
            if not watch or not active:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


@main.group("grid")
def grid_group() -> None:
    """Inspect grid files without training anything."""


@grid_group.command("count")
@click.argument("grid_path", metavar="FILE", type=click.Path(dir_okay=False))
def grid_count(grid_path) -> None:  # noqa: ANN001
    """Count a grid's trials by model and dataset; the last line is `total: N`."""
    grid = _load_grid(grid_path)
    click.echo(f"sweep {grid.name}: {len(grid.experiments)} experiments")
    click.echo(f"{'model':<14}{'dataset':<15}{'trials':>8}")
    for model, dataset, n in grid.counts():
        click.echo(f"{model:<14}{dataset:<15}{n:>8}")
    if grid.duplicates:
        click.echo(f"({grid.duplicates} duplicate specs across experiments are trained once)")
    click.echo(f"total: {len(grid.specs)}")


@grid_group.command("show")
@click.argument("grid_path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="One JSON spec per line (JSON Lines).")
def grid_show(grid_path, as_json) -> None:  # noqa: ANN001
    """List a grid's trial specs (id and summary, or JSON Lines)."""
    grid = _load_grid(grid_path)
    for exp in grid.experiments:
        if not as_json:
            click.echo(f"# {exp.name}: {len(exp.specs)} trials")
        for spec in exp.specs:
            if as_json:
                click.echo(json.dumps({"spec_id": spec.spec_id, "experiment": exp.name, **spec.to_dict()}))
            else:
                click.echo(f"{spec.spec_id[:12]}  {spec.short()}  epochs={spec.epochs}")


# Results store commands (db/): `store upgrade`, `store info`, `export`.
from pipeline.cli_store import export_command, store_group  # noqa: E402

main.add_command(store_group)
main.add_command(export_command)
from pipeline.cli_report import report_command  # noqa: E402
main.add_command(report_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
