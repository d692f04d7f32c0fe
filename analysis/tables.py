"""Tidy tables: the store (or its Parquet export) as pandas DataFrames.

Everything the figures need comes from two tables:

* ``trials_table``: one row per trial -- every ``TrialSpec`` field, the model's
  family, the trial's status and the metrics of its best epoch (best = lowest
  weighted test loss, the earliest epoch on ties, as ``cre.best_epoch``);
* ``epochs_table``: one row per (trial, epoch) -- the curves.

Both read a ``Source``: a results store (``StoreSource``, through the store's
own streaming ``db.export_parquet`` into a temporary folder: one consistent
snapshot, one code path) or a Parquet export folder (``ParquetSource``). Only
columns that are needed are read from the epochs file.

``config`` identifies a configuration: every spec field except ``lam`` and
``seed`` (a box in a box plot pools the seeds of one config at one lambda).
``config_label`` names it for humans (``fc-small · digits · n=16``; fields
that tell apart two configs with the same model/dataset/n are appended).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cre.spec import FIELD_NAMES, TrialSpec

METRICS: tuple[str, ...] = ("test_loss", "test_mse", "test_ce", "test_acc")
"""The best epoch's metrics every trial row carries (and the curves)."""

MASKED_METRICS: tuple[str, ...] = ("masked_test_loss", "masked_test_mse", "masked_test_ce", "masked_test_acc")
"""Recorded for masked ViT trials only (NaN elsewhere)."""

EPOCH_COLUMNS: tuple[str, ...] = ("trial_id", "epoch", "train_loss", "train_mse", "train_ce", *METRICS,
                                  "train_seconds", *MASKED_METRICS)

TRIAL_STATUSES: tuple[str, ...] = ("pending", "running", "completed", "failed", "interrupted")

_SPEC_DEFAULTS: dict[str, Any] = {
    name: f.default for name, f in TrialSpec.__dataclass_fields__.items()  # type: ignore[attr-defined]
}
_CONFIG_FIELDS: tuple[str, ...] = tuple(f for f in FIELD_NAMES if f not in ("lam", "seed"))


class SourceError(RuntimeError):
    """The data cannot be read: unknown sweep, missing or malformed export files. One line."""


# --------------------------------------------------------------------------- sources
@dataclass
class RawTables:
    """The export files of one source, as read (only trials of the selected sweep)."""

    sweeps: list[str]  # every sweep in the source
    trials: pd.DataFrame  # trials.parquet rows (spec JSON, status, best_* ...), plus "sweeps"
    epochs: pd.DataFrame  # EPOCH_COLUMNS
    checkpoints: pd.DataFrame  # checkpoints.parquet rows (trial_id, kind, epoch, uri, sha256, ...)
    description: str  # where the data came from, for captions and the index


class ParquetSource:
    """A folder written by ``cre-pipeline export`` (``db.export_parquet``)."""

    def __init__(self, folder: str | os.PathLike[str], *, description: str | None = None) -> None:
        self.folder = Path(folder)
        self.description = description or f"Parquet export {self.folder}"
        if not self.folder.is_dir():
            raise SourceError(f"--parquet: no folder {str(self.folder)!r}")
        missing = [n for n in ("sweeps", "trials", "epochs", "checkpoints")
                   if not (self.folder / f"{n}.parquet").is_file()]
        if missing:
            raise SourceError(f"--parquet: {self.folder} lacks {', '.join(m + '.parquet' for m in missing)} "
                              f"(write it with `cre-pipeline export --out DIR`)")

    def _read(self, name: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
        path = self.folder / f"{name}.parquet"
        try:
            if columns is not None:
                have = set(pq.read_schema(path).names)
                columns = [c for c in columns if c in have]
            return pq.read_table(path, columns=list(columns) if columns is not None else None).to_pandas()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds; one line for the user
            raise SourceError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
                from None

    def sweep_names(self) -> list[str]:
        return [str(s) for s in self._read("sweeps", ["name"])["name"]]

    def read(self, sweep: str | None = None) -> RawTables:
        """The source's rows, restricted to ``sweep`` when given (``SourceError`` if it is unknown)."""
        sweeps = self.sweep_names()
        if sweep is not None and sweep not in sweeps:
            raise SourceError(f"--sweep: no sweep named {sweep!r} in {self.description}; "
                              f"sweeps: {', '.join(sweeps) or 'none'}")
        trials = self._read("trials")
        if "sweeps" not in trials.columns:
            raise SourceError(f"{self.folder}/trials.parquet has no 'sweeps' column (not a cre-pipeline export)")
        trials["sweeps"] = trials["sweeps"].map(lambda v: [str(x) for x in v] if v is not None else [])
        if sweep is not None:
            trials = trials[trials["sweeps"].map(lambda names: sweep in names)].reset_index(drop=True)
        ids = set(trials["trial_id"])
        epochs = self._read("epochs", EPOCH_COLUMNS)
        epochs = epochs[epochs["trial_id"].isin(ids)].reset_index(drop=True)
        checkpoints = self._read("checkpoints")
        checkpoints = checkpoints[checkpoints["trial_id"].isin(ids)].reset_index(drop=True)
        return RawTables(sweeps, trials, epochs, checkpoints, self.description)


class StoreSource:
    """A results store (SQLite/PostgreSQL URL or an open ``db.Store``), read through ``db.export_parquet``."""

    def __init__(self, store: Any) -> None:
        from db import Store, StoreError

        try:
            self.store = store if isinstance(store, Store) else Store(store, upgrade=False)
        except StoreError as exc:
            raise SourceError(str(exc)) from None
        self.description = f"store {self.store.url}"

    def sweep_names(self) -> list[str]:
        return [s.name for s in self.store.list_sweeps()]

    def read(self, sweep: str | None = None) -> RawTables:
        from db import StoreError, export_parquet

        sweeps = self.sweep_names()
        if sweep is not None and sweep not in sweeps:
            raise SourceError(f"--sweep: no sweep named {sweep!r} in {self.description}; "
                              f"sweeps: {', '.join(sweeps) or 'none'}")
        tmp = Path(tempfile.mkdtemp(prefix="cre-report-"))
        try:
            try:
                export_parquet(self.store, tmp / "export", sweep=sweep)
            except StoreError as exc:
                raise SourceError(str(exc)) from None
            raw = ParquetSource(tmp / "export", description=self.description).read(None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        raw.sweeps = sweeps
        return raw


def open_source(store: Any = None, parquet: str | os.PathLike[str] | None = None) -> StoreSource | ParquetSource:
    """``StoreSource(store)`` or ``ParquetSource(parquet)``: exactly one of them must be given."""
    if (store is None) == (parquet is None):
        raise SourceError("give exactly one of a store URL or a Parquet export folder")
    return StoreSource(store) if store is not None else ParquetSource(parquet)


# --------------------------------------------------------------------------- tidy tables
@dataclass
class Tables:
    """What the report draws from: the tidy trials and epochs tables, and what was left out."""

    trials: pd.DataFrame  # trials_table(...)
    epochs: pd.DataFrame  # epochs_table(...)
    checkpoints: pd.DataFrame  # best-checkpoint rows: trial_id, epoch, uri, sha256
    status_counts: dict[str, int]  # every trial of the selection by status
    sweep: str | None
    sweeps: list[str]
    description: str
    notes: list[str] = field(default_factory=list)

    @property
    def incomplete(self) -> int:
        """Trials of the selection that are not completed (left out of the figures)."""
        return sum(v for k, v in self.status_counts.items() if k != "completed")


def _spec_dict(text: str) -> dict[str, Any]:
    data = json.loads(text)
    return {name: data.get(name, _SPEC_DEFAULTS.get(name)) for name in FIELD_NAMES}


def _family(model: str) -> str:
    from cre import get_model_info

    try:
        return get_model_info(model).family or model.split("-")[0]
    except KeyError:
        return str(model).split("-")[0]


def _input_shape(model: str) -> str:
    from cre import get_model_info

    try:
        return "x".join(map(str, get_model_info(model).input_shape))
    except KeyError:
        return ""


def _config_id(spec: dict[str, Any]) -> str:
    text = json.dumps({k: spec[k] for k in _CONFIG_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def base_label(row: Any) -> str:
    """``model · dataset · n=16 · mask 0.66 v1`` for a trials-table row (or a mapping with those keys)."""
    parts = [str(row["model"]), str(row["dataset"])]
    n = row["latent_dim"]
    if n is not None and not (isinstance(n, float) and np.isnan(n)) and not pd.isna(n):
        parts.append(f"n={int(n)}")
    if row["mask_ratio"]:
        parts.append(f"mask {row['mask_ratio']:g} {row['mask_variant']}")
    return " · ".join(parts)


def _label_configs(df: pd.DataFrame) -> pd.Series:
    """``base_label`` plus the fields that differ between configs sharing a base label."""
    labels = pd.Series("", index=df.index, dtype=object)
    if df.empty:
        return labels
    base = df.apply(base_label, axis=1)
    for _, idx in base.groupby(base).groups.items():
        sub = df.loc[idx]
        extra_fields = [f for f in _CONFIG_FIELDS
                        if f not in ("model", "dataset", "latent_dim", "mask_ratio", "mask_variant")
                        and sub[f].astype(str).nunique() > 1]
        for i in idx:
            extra = ", ".join(f"{f}={df.at[i, f]:g}" if isinstance(df.at[i, f], float) else f"{f}={df.at[i, f]}"
                              for f in extra_fields)
            labels.at[i] = base.at[i] + (f" ({extra})" if extra else "")
    return labels


def best_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per trial, the epoch row with the lowest ``test_loss`` (earliest on ties); indexed by trial_id."""
    if epochs.empty:
        return epochs.set_index("trial_id")
    ordered = epochs.sort_values(["trial_id", "test_loss", "epoch"], kind="mergesort")
    return ordered.drop_duplicates("trial_id", keep="first").set_index("trial_id")


def tidy_trials(raw: RawTables, *, include_incomplete: bool = False) -> pd.DataFrame:
    """The per-trial table of ``raw`` (see ``trials_table``)."""
    t = raw.trials
    specs = pd.DataFrame([_spec_dict(s) for s in t["spec"]], index=t.index, columns=list(FIELD_NAMES))
    df = pd.concat([t[["trial_id"]], specs], axis=1)
    df["family"] = df["model"].map(_family)
    df["input_shape"] = df["model"].map(_input_shape)
    df["status"] = t["status"].values
    df["sweeps"] = t["sweeps"].values
    best = best_epochs(raw.epochs)
    rows = best.reindex(df["trial_id"])
    df["best_epoch"] = rows["epoch"].values
    for m in (*METRICS, *MASKED_METRICS):
        df[m] = rows[m].values if m in rows.columns else np.nan
    # A trial with no epoch rows but best_* columns (should not happen; old stores): use the store's values.
    if "best_test_loss" in t.columns:
        lacking = df["test_loss"].isna().values & t["best_test_loss"].notna().values
        if lacking.any():
            for m in METRICS:
                df.loc[lacking, m] = t.loc[lacking, f"best_{m}"].values
            df.loc[lacking, "best_epoch"] = t.loc[lacking, "best_epoch"].values
    df["epochs_recorded"] = raw.epochs.groupby("trial_id").size().reindex(df["trial_id"]).fillna(0).astype(int).values
    df["config"] = [_config_id(s) for s in specs.to_dict("records")]
    df["latent_dim"] = pd.to_numeric(df["latent_dim"], errors="coerce").astype(float)  # NaN: fixed by architecture
    if not include_incomplete:
        df = df[df["status"] == "completed"]
    df = df[df["test_loss"].notna()] if not include_incomplete else df
    df = df.sort_values(["model", "dataset", "latent_dim", "mask_variant", "lam", "seed"],
                        na_position="first", kind="mergesort").reset_index(drop=True)
    df["config_label"] = _label_configs(df)
    return df


def trials_table(source: StoreSource | ParquetSource, sweep: str | None = None, *,
                 include_incomplete: bool = False) -> pd.DataFrame:
    """One row per trial (completed ones only by default) with spec columns, family and best-epoch metrics.

    Columns: ``trial_id``, every ``TrialSpec`` field, ``family`` (fc, cnn, vit,
    pca, rp), ``input_shape`` (``1x28x28`` ...), ``status``, ``sweeps``,
    ``best_epoch`` and its ``test_loss/test_mse/test_ce/test_acc`` (and
    ``masked_test_*``), ``epochs_recorded``, ``config`` and ``config_label``.
    ``df.attrs["status_counts"]`` counts every trial of the selection by
    status, ``df.attrs["incomplete"]`` those left out.
    """
    raw = source.read(sweep)
    df = tidy_trials(raw, include_incomplete=include_incomplete)
    counts = status_counts(raw.trials)
    df.attrs["status_counts"] = counts
    df.attrs["incomplete"] = sum(v for k, v in counts.items() if k != "completed")
    return df


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    counts = {s: 0 for s in TRIAL_STATUSES}
    for status, n in trials["status"].value_counts().items():
        counts[str(status)] = int(n)
    return counts


def tidy_epochs(raw: RawTables, trials: pd.DataFrame, trial_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Epoch rows joined with the trial's spec columns (see ``epochs_table``)."""
    ep = raw.epochs
    if trial_ids is not None:
        ep = ep[ep["trial_id"].isin(set(trial_ids))]
    keep = ["trial_id", *FIELD_NAMES, "family", "config", "config_label", "status"]
    out = ep.merge(trials[[c for c in keep if c in trials.columns]], on="trial_id", how="inner",
                   suffixes=("", "_spec"))
    return out.sort_values(["trial_id", "epoch"], kind="mergesort").reset_index(drop=True)


def epochs_table(source: StoreSource | ParquetSource, sweep: str | None = None, *,
                 trial_ids: Iterable[str] | None = None, include_incomplete: bool = True) -> pd.DataFrame:
    """Per-epoch curves: every epoch row (of ``trial_ids``) with the trial's spec columns and config label.

    Incomplete trials are included by default (a running sweep's curves are worth looking at).
    """
    raw = source.read(sweep)
    trials = tidy_trials(raw, include_incomplete=include_incomplete)
    return tidy_epochs(raw, trials, trial_ids)


def load_tables(source: StoreSource | ParquetSource, sweep: str | None = None) -> Tables:
    """Both tidy tables and the best-checkpoint rows of one read of ``source`` (what ``report`` uses)."""
    raw = source.read(sweep)
    trials = tidy_trials(raw)
    epochs = tidy_epochs(raw, tidy_trials(raw, include_incomplete=True))
    cps = raw.checkpoints
    if not cps.empty:
        cps = cps[cps["kind"] == "best"][["trial_id", "epoch", "uri", "sha256"]].reset_index(drop=True)
    else:
        cps = pd.DataFrame(columns=["trial_id", "epoch", "uri", "sha256"])
    counts = status_counts(raw.trials)
    trials.attrs["status_counts"] = counts
    trials.attrs["incomplete"] = sum(v for k, v in counts.items() if k != "completed")
    return Tables(trials=trials, epochs=epochs, checkpoints=cps, status_counts=counts, sweep=sweep,
                  sweeps=raw.sweeps, description=raw.description)
