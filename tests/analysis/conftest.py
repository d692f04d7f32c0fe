"""Fixtures of the analysis tests: a real SQLite store filled with generated metric rows of known values.

``planted`` (session scope) writes, through ``db.Store`` as a worker would
(upsert_trials -> claim -> record_epoch x 3 -> finish_attempt), trials of every
figure's kind: FC small/medium/large, PCA/RP baselines, ViT (plain and masked
v1/v2), CNN small/large, ViT large. Each trial has three epochs; epoch 2 has
the lowest weighted test loss and carries the planted accuracy / MSE, epochs 1
and 3 carry other values, so a table that took the last epoch would be wrong.

Planted verdicts (on MNIST):
* fc-small n=16: accuracy at lambda 0.2 clearly ABOVE lambda 0 -> allies (accuracy side);
* fc-medium n=16: at lambda 0.5 accuracy below lambda 0 and MSE above lambda 1 -> antagonists;
* fc-large n=16: a single seed at lambda 0.5 -> insufficient seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cre.spec import TrialSpec  # noqa: E402
from db import Store, export_parquet  # noqa: E402

SWEEP = "planted"
SEEDS = (0, 1, 2)


def planted_metrics(spec: TrialSpec) -> tuple[float, float]:
    """(test_acc, test_mse) of the best epoch of ``spec``: a smooth trade-off plus per-seed jitter."""
    lam, s = spec.lam, spec.seed
    jitter = (s - 1) * 0.002
    acc = 0.95 - 0.5 * lam ** 6 + jitter
    mse = 0.02 + 0.08 * (1 - lam) ** 2 + jitter / 4
    if spec.model == "fc-small" and spec.dataset == "mnist" and spec.latent_dim == 16:
        acc = {0.0: 0.90, 0.2: 0.95}.get(lam, acc) + jitter  # synergy: 0.2 beats 0 on accuracy
    if spec.model == "fc-medium" and spec.dataset == "mnist" and spec.latent_dim == 16:
        acc = {0.0: 0.95, 0.5: 0.85}.get(lam, acc) + jitter  # antagonism: worse on both sides
        mse = {1.0: 0.02, 0.5: 0.08}.get(lam, mse) + jitter / 4
    return float(acc), float(mse)


def planted_specs() -> list[TrialSpec]:
    specs: list[TrialSpec] = []
    add = specs.append
    for ds in ("mnist", "fashion_mnist"):
        for n in (3, 6, 16):
            for lam in (0.0, 0.2, 0.5, 1.0):
                for seed in SEEDS:
                    add(TrialSpec(model="fc-small", dataset=ds, latent_dim=n, lam=lam, epochs=3, seed=seed))
        for model in ("fc-medium", "fc-large"):
            for lam in (0.0, 0.2, 0.5, 1.0):
                for seed in SEEDS:
                    if model == "fc-large" and ds == "mnist" and lam == 0.5 and seed > 0:
                        continue  # one seed only: "insufficient seeds"
                    add(TrialSpec(model=model, dataset=ds, latent_dim=16, lam=lam, epochs=3, seed=seed))
        for model in ("pca-small", "rp-small"):
            for n in (3, 16):
                for seed in (0, 1):
                    add(TrialSpec(model=model, dataset=ds, latent_dim=n, lam=0.5, epochs=3, seed=seed))
    for n in (8, 16):
        for seed in (0, 1):
            for lam in (0.0, 0.5, 1.0):
                add(TrialSpec(model="vit-small", dataset="mnist", latent_dim=n, lam=lam, epochs=3, seed=seed))
            for variant in ("v1", "v2"):
                add(TrialSpec(model="vit-small", dataset="mnist", latent_dim=n, lam=1.0, epochs=3, seed=seed,
                              mask_ratio=0.66, mask_variant=variant))
    for seed in (0, 1):
        for lam in (0.0, 0.5, 1.0):
            add(TrialSpec(model="cnn-small", dataset="mnist", lam=lam, epochs=3, seed=seed, dropout=0.3))
            add(TrialSpec(model="cnn-large", dataset="cifar10", lam=lam, epochs=3, seed=seed, dropout=0.3))
            add(TrialSpec(model="vit-large", dataset="cifar10", latent_dim=8, lam=lam, epochs=3, seed=seed))
    return specs


def epoch_rows(spec: TrialSpec) -> list[dict]:
    """Three epochs; epoch 2 is the best (lowest test_loss) and holds ``planted_metrics``."""
    acc, mse = planted_metrics(spec)
    ce = 0.3
    rows = []
    for epoch, (a, m, c) in enumerate(((acc - 0.2, mse + 0.05, ce + 0.5), (acc, mse, ce),
                                        (acc - 0.1, mse + 0.02, ce + 0.2)), start=1):
        loss = spec.lam * m + (1 - spec.lam) * c
        rows.append({"epoch": epoch, "train_loss": loss, "train_mse": m, "train_ce": c, "test_loss": loss,
                     "test_mse": m, "test_ce": c, "test_acc": a, "train_seconds": 0.01})
    return rows


@dataclass(frozen=True)
class Planted:
    url: str
    parquet: Path
    specs: tuple[TrialSpec, ...]
    pending: TrialSpec  # upserted, never run
    failed: TrialSpec  # ran one epoch, then failed


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    """A SQLite store with the planted sweep (plus one pending and one failed trial) and its Parquet export."""
    root = tmp_path_factory.mktemp("planted")
    url = f"sqlite:///{root / 'store.db'}"
    specs = planted_specs()
    pending = TrialSpec(model="fc-small", dataset="mnist", latent_dim=24, lam=0.5, epochs=3, seed=0)
    failed = TrialSpec(model="fc-small", dataset="mnist", latent_dim=24, lam=0.5, epochs=3, seed=1)
    with Store(url) as store:
        store.create_sweep(SWEEP, "name: planted\n")
        store.upsert_trials(SWEEP, [*specs, pending, failed])
        store.create_sweep("other", "")
        store.upsert_trials("other", [specs[0]])  # a trial may belong to two sweeps
        for spec in specs:
            attempt = store.claim(spec.spec_id, host="test", pid=1)
            for row in epoch_rows(spec):
                store.record_epoch(spec.spec_id, attempt.attempt, row)
            store.finish_attempt(spec.spec_id, attempt.attempt)
        attempt = store.claim(failed.spec_id, host="test", pid=1)
        store.record_epoch(failed.spec_id, attempt.attempt, epoch_rows(failed)[0])
        store.fail_attempt(failed.spec_id, attempt.attempt, "RuntimeError: planted failure")
        export_parquet(store, root / "export")
    return Planted(url, root / "export", tuple(specs), pending, failed)


@pytest.fixture(scope="session")
def planted_tables(planted: Planted):  # noqa: ANN201
    from analysis.tables import ParquetSource, load_tables

    return load_tables(ParquetSource(planted.parquet), SWEEP)


class FakeLoader:
    """Untrained models built from the specs (seeded) and the synthetic test set: no checkpoints needed."""

    def __init__(self, trials) -> None:  # noqa: ANN001
        self.specs = {r.trial_id: r for r in trials.itertuples()}
        self.loaded: list[str] = []

    def model(self, trial_id: str):  # noqa: ANN201
        import torch

        from cre import build_model

        r = self.specs[trial_id]
        torch.manual_seed(int(r.seed))
        spec = TrialSpec(model=r.model, dataset="synthetic", latent_dim=int(r.latent_dim), lam=r.lam)
        self.loaded.append(trial_id)
        return build_model(spec).eval()

    def test_set(self, dataset: str, shape):  # noqa: ANN001, ANN201
        from cre import load_dataset

        data = load_dataset("synthetic", shape=shape)
        return data.x_test, data.y_test


@pytest.fixture
def fake_loader(planted_tables) -> FakeLoader:  # noqa: ANN001
    return FakeLoader(planted_tables.trials)
