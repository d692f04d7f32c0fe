"""Bootstrap intervals and the verdict table: a planted synergy is flagged, a planted antagonism is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import diff_ci, mean_ci, summarise, synergy_table, verdict_summary


def _row(table: pd.DataFrame, model: str, lam: float, dataset: str = "mnist") -> pd.Series:
    sel = table[(table["model"] == model) & (table["dataset"] == dataset) & (table["latent_dim"] == 16)
                & (table["lam"] == lam)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def test_planted_synergy_is_flagged_as_allies(planted_tables) -> None:  # noqa: ANN001
    table = synergy_table(planted_tables.trials)
    row = _row(table, "fc-small", 0.2)
    assert row["verdict"] == "allies" and row["synergy_side"] == "accuracy"
    assert row["acc_diff"] == pytest.approx(0.05) and row["acc_mean_lam0"] == pytest.approx(0.90)
    assert 0 < row["acc_ci_low"] <= row["acc_diff"] <= row["acc_ci_high"]
    assert row["n_seeds"] == row["n_seeds_lam0"] == row["n_seeds_lam1"] == 3


def test_planted_antagonism_is_not_flagged(planted_tables) -> None:  # noqa: ANN001
    table = synergy_table(planted_tables.trials)
    row = _row(table, "fc-medium", 0.5)
    assert row["verdict"] == "antagonists" and row["synergy_side"] == ""
    assert row["acc_diff"] == pytest.approx(-0.10) and row["acc_ci_high"] < 0
    assert row["mse_diff"] == pytest.approx(0.06) and row["mse_ci_low"] > 0
    # the smooth trade-off everywhere else is never synergy either
    others = table[~((table["model"] == "fc-small") & (table["dataset"] == "mnist") & (table["latent_dim"] == 16))]
    assert "allies" not in set(others["verdict"])


def test_one_seed_is_insufficient_and_baselines_are_left_out(planted_tables) -> None:  # noqa: ANN001
    table = synergy_table(planted_tables.trials)
    row = _row(table, "fc-large", 0.5)
    assert row["verdict"] == "insufficient seeds" and row["n_seeds"] == 1 and np.isnan(row["acc_ci_low"])
    assert not table["family"].isin(["pca", "rp"]).any()
    assert set(table["lam"]) <= {0.2, 0.5}  # intermediate lambdas only
    assert table["mask_variant"].isna().all()  # masked ViTs exist at lambda = 1 only: nothing to compare
    counts = verdict_summary(table)
    assert counts["allies"] >= 1 and counts["antagonists"] >= 1 and counts["insufficient seeds"] == 1


def test_missing_reference() -> None:
    df = pd.DataFrame({"config": "c", "config_label": "x", "model": "fc-small", "family": "fc", "dataset": "d",
                       "latent_dim": 3.0, "mask_variant": None, "lam": [0.0, 0.0, 0.5, 0.5],
                       "test_acc": [0.9, 0.91, 0.8, 0.81], "test_mse": [0.1, 0.11, 0.05, 0.06]})
    table = synergy_table(df)
    assert list(table["verdict"]) == ["missing reference"] and table["n_seeds_lam1"].item() == 0


def test_bootstrap_is_seeded_and_sane() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.1, 8), rng.normal(0.0, 0.1, 8)
    assert diff_ci(a, b) == diff_ci(a, b)  # same seed, same numbers
    d, lo, hi = diff_ci(a, b)
    assert lo < d < hi and lo > 0.5
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and 1.0 <= lo < 2.0 < hi <= 3.0
    assert np.isnan(mean_ci([1.0])[1]) and np.isnan(diff_ci([1.0], [2.0, 3.0])[1])
    s = summarise(pd.DataFrame({"g": [1, 1, 2], "test_acc": [0.5, 0.7, 0.9], "test_mse": [0.1, 0.3, 0.2]}), ["g"])
    assert list(s["n"]) == [2, 1] and s["test_acc_mean"].tolist() == pytest.approx([0.6, 0.9])
