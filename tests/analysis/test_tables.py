"""The tidy tables: the store and its Parquet export give the same per-trial table with best-epoch metrics."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SWEEP, planted_metrics

from analysis.tables import (
    ParquetSource,
    SourceError,
    StoreSource,
    epochs_table,
    load_tables,
    open_source,
    trials_table,
)
from cre.spec import FIELD_NAMES


def test_trials_table_has_spec_columns_and_the_best_epochs_metrics(planted) -> None:  # noqa: ANN001
    df = trials_table(StoreSource(planted.url), SWEEP)
    assert len(df) == len(planted.specs)  # completed only
    assert set(FIELD_NAMES) <= set(df.columns)
    assert {"family", "config", "config_label", "best_epoch", "test_acc", "test_mse", "test_loss"} <= set(df.columns)
    by_id = df.set_index("trial_id")
    for spec in planted.specs:
        row = by_id.loc[spec.spec_id]
        acc, mse = planted_metrics(spec)
        assert row["best_epoch"] == 2  # epoch 2 has the lowest weighted test loss, not the last one
        assert row["test_acc"] == pytest.approx(acc) and row["test_mse"] == pytest.approx(mse)
        assert row["model"] == spec.model and row["lam"] == spec.lam and row["seed"] == spec.seed
    assert set(df["family"]) == {"fc", "pca", "rp", "vit", "cnn"}
    assert df.loc[df["model"] == "cnn-small", "latent_dim"].isna().all()


def test_known_means_per_configuration(planted) -> None:  # noqa: ANN001
    df = trials_table(StoreSource(planted.url), SWEEP)
    g = df[(df["model"] == "fc-small") & (df["dataset"] == "mnist") & (df["latent_dim"] == 16)]
    means = g.groupby("lam")["test_acc"].mean()
    assert means[0.0] == pytest.approx(0.90) and means[0.2] == pytest.approx(0.95)
    assert g["config"].nunique() == 1 and g["config_label"].iloc[0] == "fc-small · mnist · n=16"
    masked = df[df["mask_ratio"] > 0]
    assert set(masked["config_label"].str.extract(r"mask 0.66 (v\d)")[0]) == {"v1", "v2"}


def test_incomplete_trials_are_left_out_and_counted(planted) -> None:  # noqa: ANN001
    df = trials_table(StoreSource(planted.url), SWEEP)
    assert df.attrs["incomplete"] == 2
    assert df.attrs["status_counts"]["pending"] == 1 and df.attrs["status_counts"]["failed"] == 1
    assert planted.failed.spec_id not in set(df["trial_id"])
    everything = trials_table(StoreSource(planted.url), SWEEP, include_incomplete=True)
    assert len(everything) == len(planted.specs) + 2
    failed = everything.set_index("trial_id").loc[planted.failed.spec_id]
    assert failed["status"] == "failed" and failed["best_epoch"] == 1  # its one epoch


def test_store_and_parquet_give_the_same_tables(planted) -> None:  # noqa: ANN001
    a = load_tables(StoreSource(planted.url), SWEEP)
    b = load_tables(ParquetSource(planted.parquet), SWEEP)
    cols = [c for c in a.trials.columns if c != "sweeps"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])
    pd.testing.assert_frame_equal(a.epochs, b.epochs)
    assert a.status_counts == b.status_counts and a.sweeps == b.sweeps == [SWEEP, "other"]


def test_sweep_selection(planted) -> None:  # noqa: ANN001
    src = ParquetSource(planted.parquet)
    assert len(trials_table(src, "other")) == 1
    assert len(trials_table(src)) == len(planted.specs)  # every sweep: the union, each trial once
    with pytest.raises(SourceError, match="no sweep named 'nope'.*sweeps: planted, other"):
        trials_table(src, "nope")
    with pytest.raises(SourceError, match="no sweep named 'nope'"):
        trials_table(StoreSource(planted.url), "nope")


def test_epochs_table_gives_the_curves_with_spec_columns(planted) -> None:  # noqa: ANN001
    spec = planted.specs[0]
    ep = epochs_table(ParquetSource(planted.parquet), SWEEP, trial_ids=[spec.spec_id])
    assert list(ep["epoch"]) == [1, 2, 3]
    assert (ep["model"] == spec.model).all() and (ep["lam"] == spec.lam).all()
    assert ep.loc[ep["epoch"] == 2, "test_acc"].item() == pytest.approx(planted_metrics(spec)[0])
    every = epochs_table(ParquetSource(planted.parquet), SWEEP)
    assert every["trial_id"].nunique() == len(planted.specs) + 1  # the failed trial's epoch is a curve too


def test_source_errors_are_one_line(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(SourceError, match="exactly one"):
        open_source()
    with pytest.raises(SourceError, match="no folder"):
        ParquetSource(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "sweeps.parquet").write_bytes(b"not parquet")
    with pytest.raises(SourceError, match="lacks trials.parquet, epochs.parquet, checkpoints.parquet"):
        ParquetSource(tmp_path / "half")
    with pytest.raises(SourceError, match="no SQLite store") as exc:
        StoreSource(f"sqlite:///{tmp_path / 'missing.db'}")
    assert "\n" not in str(exc.value)
