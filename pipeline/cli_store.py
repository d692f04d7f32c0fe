"""CLI commands of the results store: ``store upgrade``, ``store info`` and ``export``.

Thin, as every command: parse, call ``db``, print. A ``StoreError`` (bad URL,
unreachable server, newer schema, unknown sweep, unwritable folder) becomes a
one-line ``Error: ...`` with exit code 1; the password of a URL is never
printed.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import click

from db import EXPORT_TABLES, Store, StoreError, default_store_url, export_parquet

STORE_HELP = "Results store URL: sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB " \
             "(default: env CRE_STORE, else sqlite:///cre-results/results.db)."


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--store URL`` option (value None when not given: resolve it with ``resolve_store_url``)."""
    return click.option("--store", "store_url", default=None, metavar="URL", help=STORE_HELP)(fn)


def resolve_store_url(value: str | None) -> str:
    """``--store`` if given, else ``db.default_store_url()`` ($CRE_STORE, else the local SQLite file)."""
    return value if value else default_store_url()


def open_store(value: str | None, *, upgrade: bool = True) -> Store:
    """Open the store named by ``--store``; a ``StoreError`` becomes a one-line ClickException."""
    try:
        return Store(resolve_store_url(value), upgrade=upgrade)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("store")
def store_group() -> None:
    """Manage the results store: create or upgrade its schema, show what it holds."""


@store_group.command("upgrade")
@store_option
def store_upgrade(store_url: str | None) -> None:
    """Create the store's schema, or upgrade it to this version's newest revision.

    Opening a store does this implicitly; this command does it explicitly
    (e.g. once, before starting hundreds of workers against a new database).
    """
    with open_store(store_url) as store:
        info = _info(store)
    before = store.schema_revision_before
    if before == info["head"]:
        click.echo(f"store {store.url}: schema already at revision {info['head']} (newest)")
    else:
        click.echo(f"store {store.url}: schema upgraded from {before or 'empty'} to revision {info['head']}")


@store_group.command("info")
@store_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def store_info(store_url: str | None, as_json: bool) -> None:
    """Show the store's URL (password masked), schema revision, and rows per table. Changes nothing."""
    with open_store(store_url, upgrade=False) as store:
        info = _info(store)
        sweeps = [s.name for s in store.list_sweeps()]
        counts = store.counts()
    if as_json:
        click.echo(json.dumps({**info, "sweeps": sweeps, "trials_by_status": counts}))
        return
    click.echo(f"store     {info['url']} ({info['dialect']})")
    click.echo(f"revision  {info['revision']} (newest known: {info['head']})")
    click.echo(f"sweeps    {', '.join(sweeps) or '-'}")
    click.echo("trials    " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo("rows      " + "  ".join(f"{k} {v}" for k, v in info["rows"].items()))


def _info(store: Store) -> dict[str, Any]:
    try:
        return store.info()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("export")
@store_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, writable=True),
              help="Folder to write sweeps/trials/attempts/epochs/checkpoints.parquet into (created).")
@click.option("--sweep", default=None, help="Only this sweep's trials (and their attempts, epochs, checkpoints).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Rows fetched and written per batch (memory stays flat).")
def export_command(store_url: str | None, out_dir: str, sweep: str | None, batch_rows: int) -> None:
    """Export the store's tables to Parquet, one file per table, columns named as in the tables.

    trials.parquet has one more column, `sweeps`: the names of the sweeps the
    trial belongs to. Files appear only once all are complete.
    """
    with open_store(store_url, upgrade=False) as store:
        try:
            counts = export_parquet(store, out_dir, sweep=sweep, batch_rows=batch_rows)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    for name in EXPORT_TABLES:
        click.echo(f"{name:<12} {counts[name]:>10} rows  -> {out_dir}/{name}.parquet")
