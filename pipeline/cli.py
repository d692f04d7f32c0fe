"""The ``cre-pipeline`` command line. Commands stay thin: parse, build a config, call a library function."""

from __future__ import annotations

import json
import sys

import click

from cre import DATASETS, MASK_VARIANTS, TrialSpec, list_models


class SpecError(click.UsageError):
    """A spec that does not validate: one line, exit code 2."""


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


# Results store commands (db/): `store upgrade`, `store info`, `export`.
from pipeline.cli_store import export_command, store_group  # noqa: E402

main.add_command(store_group)
main.add_command(export_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
