"""``cre-pipeline report``: every figure of the paper, the verdict table and an index.html from a sweep.

Thin, as every command: parse, read the tidy tables (``analysis.tables``),
wire the checkpoint loader (store rows or ``checkpoints.parquet`` +
``ArtifactRoot.read``), call ``analysis.report.build_report``, print. Errors
are one line: bad flags exit 2, an unreadable store / export or an unknown
sweep exit 1.
"""

from __future__ import annotations

import os
import sys
import time

import click


class ReportUsageError(click.ClickException):
    """A bad flag value: one line on stderr, exit code 2 (as the other commands' InputError)."""

    exit_code = 2


def _formats(value: str) -> list[str]:
    from analysis.report import FORMATS

    formats = [f.strip().lower().lstrip(".") for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ReportUsageError(f"--format: unknown format {', '.join(map(repr, bad)) or repr(value)}; "
                               f"give a comma-separated list of {', '.join(FORMATS)} (e.g. png,pdf)")
    return list(dict.fromkeys(formats))


@click.command("report")
@click.option("--store", "store_url", default=None, metavar="URL",
              help="Results store URL (sqlite:///PATH or postgresql+psycopg://...); without --parquet the default is "
                   "env CRE_STORE, else sqlite:///cre-results/results.db if it exists.")
@click.option("--parquet", "parquet_dir", default=None, metavar="DIR",
              help="Read a folder written by `cre-pipeline export` instead of a store.")
@click.option("--sweep", default=None, help="Only this sweep's trials (default: every trial in the store/export).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for index.html, figures/, synergy.csv and trials.csv (created).")
@click.option("--format", "formats", default="png", show_default=True,
              help="Image formats, comma-separated: png, pdf, svg (index.html shows the png/svg).")
@click.option("--only", default=None, metavar="LIST",
              help="Only these figures, comma-separated numbers or keys (e.g. 3,6,training_curves).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, envvar="CRE_DATA_DIR",
              help="Folder with the datasets, for the test images of Fig. 4, 5, 15 (env CRE_DATA_DIR).")
@click.option("--dpi", type=click.IntRange(min=30, max=600), default=120, show_default=True, help="PNG resolution.")
def report_command(store_url, parquet_dir, sweep, out_dir, formats, only, data_dir, dpi) -> None:  # noqa: ANN001
    """Draw the paper's figures (3-15, training curves), the verdict table and index.html from a sweep.

    Reads a results store (--store; default env CRE_STORE, else the local
    cre-results/results.db when it exists) or a Parquet export
    (--parquet). Only completed trials are drawn; a figure whose trials are not
    in the data is listed in index.html with what it needs. Fig. 4, 5 and 15
    load the trials' best checkpoints (and the datasets' test images).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from analysis.loaders import CheckpointModels, locate_in_store, locate_in_table
    from analysis.report import build_report
    from analysis.tables import ParquetSource, SourceError, StoreSource, load_tables
    from pipeline.artifacts import ArtifactRoot

    t0 = time.perf_counter()
    fmts = _formats(formats)
    if store_url and parquet_dir:
        raise ReportUsageError("give either --store or --parquet, not both")
    if not store_url and not parquet_dir:
        # Like every command: $CRE_STORE, else the local default store -- but only one that exists.
        from db.urls import DEFAULT_SQLITE_PATH, default_store_url

        store_url = default_store_url()
        if not os.environ.get("CRE_STORE") and not DEFAULT_SQLITE_PATH.is_file():
            raise ReportUsageError(f"give --store URL (or set CRE_STORE) or --parquet DIR (a `cre-pipeline export`); "
                                   f"there is no store at the default {store_url}")
    selected = None if only is None else [s.strip() for s in only.split(",") if s.strip()]
    try:
        source = StoreSource(store_url) if store_url else ParquetSource(parquet_dir)
        tables = load_tables(source, sweep)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    if selected is not None:
        from analysis.report import FIGURES

        known = {f.key for f in FIGURES} | {f.number for f in FIGURES}
        unknown = [s for s in selected if s not in known]
        if unknown:
            raise ReportUsageError(f"--only: unknown figure(s) {', '.join(unknown)}; figures: "
                                   f"{', '.join(f.number for f in FIGURES)} (or their keys)")
    locate = locate_in_store(source.store) if isinstance(source, StoreSource) else locate_in_table(tables.checkpoints)
    loader = CheckpointModels(locate, ArtifactRoot.read, data_dir=data_dir)
    click.echo(f"{tables.description}: {len(tables.trials)} completed trials"
               + (f" ({tables.incomplete} not completed, left out)" if tables.incomplete else ""), err=True)
    try:
        result = build_report(tables, out_dir, formats=fmts, loader=loader, dpi=dpi, only=selected,
                              log=lambda line: click.echo(line, err=True))
    except OSError as exc:
        raise click.ClickException(f"--out {out_dir}: cannot write the report ({exc.strerror or exc})") from None
    drawn = sum(f.drawn for f in result.figures)
    click.echo(f"report: {drawn} of {len(result.figures)} figures drawn, {len(result.synergy)} verdict rows, "
               f"{time.perf_counter() - t0:.1f}s -> {result.index}", err=True)
    click.echo(str(result.index))
    if result.errors:
        raise click.ClickException(f"{len(result.errors)} figure(s) failed: "
                                   + "; ".join(f"{f.key}: {f.error}" for f in result.errors))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(report_command())
