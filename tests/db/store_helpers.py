"""Helpers of the results-store tests (imported by the test modules as ``store_helpers``)."""

from __future__ import annotations

from cre.spec import TrialSpec


def make_specs(n: int, *, seed0: int = 0, epochs: int = 5, model: str = "fc-small", dataset: str = "digits",
               lam: float = 0.5) -> list[TrialSpec]:
    """``n`` distinct valid specs (seeds seed0 ... seed0 + n - 1)."""
    return [TrialSpec(model=model, dataset=dataset, latent_dim=4, lam=lam, epochs=epochs, seed=seed0 + i)
            for i in range(n)]


def metrics(epoch: int, test_loss: float = 1.0, **extra: float | None) -> dict:
    """A complete epoch-metrics mapping (as EpochMetrics.to_dict() gives)."""
    return {"epoch": epoch, "train_loss": 2.0, "train_mse": 0.5, "train_ce": 1.5, "test_loss": test_loss,
            "test_mse": 0.25, "test_ce": 0.75, "test_acc": 0.5, "train_seconds": 0.125, **extra}
