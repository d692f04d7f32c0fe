"""Means with bootstrap confidence intervals, and the "antagonists or allies?" verdict table.

Bootstraps are percentile bootstraps over seeds with a seeded numpy RNG, so a
report drawn twice from the same data gives the same numbers. With few seeds
(3 in the quickstart) a percentile bootstrap is optimistic: its intervals are
narrower than a t-interval's. The verdict table says so in its notes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

N_BOOT = 10_000
"""Bootstrap resamples per interval."""

LEVEL = 0.95
"""Confidence level of every interval."""

BASELINE_FAMILIES = ("pca", "rp")
"""Frozen-encoder baselines: lambda has no effect on them, they are no CREs for the verdict."""

VERDICTS = ("allies", "antagonists", "inconclusive", "insufficient seeds", "missing reference")
"""Every verdict the table gives (see ``synergy_table``)."""


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def boot_means(values: Sequence[float], *, n_boot: int = N_BOOT, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` means of resamples (with replacement) of ``values``."""
    a = np.asarray(values, dtype=float)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    return a[idx].mean(axis=1)


def mean_ci(values: Sequence[float], *, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile-bootstrap interval; (mean, nan, nan) for fewer than 2 values."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return (np.nan, np.nan, np.nan)
    if len(a) < 2:
        return (float(a.mean()), np.nan, np.nan)
    means = boot_means(a, n_boot=n_boot, rng=_rng(seed))
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(a.mean()), float(lo), float(hi)


def diff_ci(a: Sequence[float], b: Sequence[float], *, level: float = LEVEL, n_boot: int = N_BOOT,
            seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high): percentile bootstrap of the difference, resampling each group on its own."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return (np.nan, np.nan, np.nan)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return (diff, np.nan, np.nan)
    rng = _rng(seed)
    d = boot_means(a, n_boot=n_boot, rng=rng) - boot_means(b, n_boot=n_boot, rng=rng)
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return diff, float(lo), float(hi)


def summarise(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = ("test_acc", "test_mse"), *,
              level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per group of ``by``: n, and for each metric its mean and bootstrap CI (``<m>_mean/_low/_high``)."""
    rows = []
    for key, g in df.groupby(list(by), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n"] = len(g)
        for m in metrics:
            mean, lo, hi = mean_ci(g[m].to_numpy(), level=level, n_boot=n_boot, seed=seed)
            row.update({f"{m}_mean": mean, f"{m}_low": lo, f"{m}_high": hi})
        rows.append(row)
    cols = [*by, "n", *[f"{m}_{s}" for m in metrics for s in ("mean", "low", "high")]]
    return pd.DataFrame(rows, columns=cols)


SYNERGY_COLUMNS = (
    "config_label", "model", "family", "dataset", "latent_dim", "mask_variant", "lam",
    "n_seeds", "n_seeds_lam0", "n_seeds_lam1",
    "acc_mean", "acc_mean_lam0", "acc_diff", "acc_ci_low", "acc_ci_high",
    "mse_mean", "mse_mean_lam1", "mse_diff", "mse_ci_low", "mse_ci_high",
    "synergy_side", "verdict", "config",
)


def synergy_table(trials: pd.DataFrame, *, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
                  min_seeds: int = 2) -> pd.DataFrame:
    """Antagonists or allies, per configuration (variant x dataset x n x masking) and intermediate lambda.

    For each config with trials at lambda = 0 and lambda = 1 and each lambda
    strictly between: ``acc_diff`` = mean accuracy at lambda minus at 0, and
    ``mse_diff`` = mean MSE at lambda minus at 1, each with a percentile
    bootstrap CI (resampling the seeds of each group, seeded RNG).

    * ``allies``: accuracy significantly ABOVE lambda = 0 (``acc_ci_low > 0``)
      or MSE significantly BELOW lambda = 1 (``mse_ci_high < 0``) -- adding the
      other objective helped (``synergy_side`` says which: accuracy,
      reconstruction, both);
    * ``antagonists``: significantly worse on both sides of the trade-off
      (accuracy below lambda = 0 and MSE above lambda = 1);
    * ``inconclusive``: neither (e.g. worse on one side only);
    * ``insufficient seeds``: fewer than ``min_seeds`` trials in one of the three groups;
    * ``missing reference``: the config has no lambda = 0 or no lambda = 1 trials.

    PCA/RP baselines are left out (lambda does not act on a frozen encoder).
    """
    df = trials[~trials["family"].isin(BASELINE_FAMILIES)]
    rows = []
    for config, g in df.groupby("config", sort=False):
        first = g.iloc[0]
        lam0 = g[g["lam"] == 0.0]
        lam1 = g[g["lam"] == 1.0]
        for lam in sorted(x for x in g["lam"].unique() if 0.0 < x < 1.0):
            cur = g[g["lam"] == lam]
            row = {
                "config": config, "config_label": first["config_label"], "model": first["model"],
                "family": first["family"], "dataset": first["dataset"], "latent_dim": first["latent_dim"],
                "mask_variant": first["mask_variant"], "lam": lam,
                "n_seeds": len(cur), "n_seeds_lam0": len(lam0), "n_seeds_lam1": len(lam1),
                "acc_mean": cur["test_acc"].mean(), "acc_mean_lam0": lam0["test_acc"].mean() if len(lam0) else np.nan,
                "mse_mean": cur["test_mse"].mean(), "mse_mean_lam1": lam1["test_mse"].mean() if len(lam1) else np.nan,
            }
            acc = diff_ci(cur["test_acc"], lam0["test_acc"], level=level, n_boot=n_boot, seed=seed)
            mse = diff_ci(cur["test_mse"], lam1["test_mse"], level=level, n_boot=n_boot, seed=seed)
            row.update(acc_diff=acc[0], acc_ci_low=acc[1], acc_ci_high=acc[2],
                       mse_diff=mse[0], mse_ci_low=mse[1], mse_ci_high=mse[2])
            row["synergy_side"], row["verdict"] = _verdict(row, min_seeds)
            rows.append(row)
    out = pd.DataFrame(rows, columns=list(SYNERGY_COLUMNS))
    if not out.empty:
        out = out.sort_values(["family", "model", "dataset", "latent_dim", "mask_variant", "lam"],
                              na_position="first", kind="mergesort").reset_index(drop=True)
    return out


def _verdict(row: dict, min_seeds: int) -> tuple[str, str]:
    if row["n_seeds_lam0"] == 0 or row["n_seeds_lam1"] == 0:
        return "", "missing reference"
    if min(row["n_seeds"], row["n_seeds_lam0"], row["n_seeds_lam1"]) < min_seeds:
        return "", "insufficient seeds"
    acc_up = row["acc_ci_low"] > 0
    mse_down = row["mse_ci_high"] < 0
    if acc_up or mse_down:
        side = "both" if acc_up and mse_down else "accuracy" if acc_up else "reconstruction"
        return side, "allies"
    if row["acc_ci_high"] < 0 and row["mse_ci_low"] > 0:
        return "", "antagonists"
    return "", "inconclusive"


def verdict_summary(table: pd.DataFrame) -> dict[str, int]:
    """How many (config, lambda) rows got each verdict (every verdict present, 0 when none)."""
    counts = {v: 0 for v in VERDICTS}
    for v, n in table["verdict"].value_counts().items():
        counts[str(v)] = int(n)
    return counts
