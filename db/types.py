"""What the store returns: frozen dataclasses, never ORM rows.

Field names are the column names of the tables in ``db.schema`` (the export's
Parquet columns use the same names). Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cre.spec import TrialSpec


@dataclass(frozen=True)
class Sweep:
    """A named sweep and the grid text it was last launched with."""

    name: str
    grid_text: str
    created_at: datetime
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Trial:
    """A trial: its spec, the spec's indexed fields, its progress and (once completed) its best epoch."""

    trial_id: str  # == spec.spec_id
    spec: "TrialSpec"
    model: str
    dataset: str
    latent_dim: int | None
    lam: float
    mask_ratio: float
    mask_variant: str | None
    seed: int
    epochs: int
    status: str  # one of TRIAL_STATUSES
    attempts: int  # attempts claimed so far
    last_error: str | None  # first line of the last failure
    best_epoch: int | None
    best_test_loss: float | None
    best_test_mse: float | None
    best_test_ce: float | None
    best_test_acc: float | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Attempt:
    """One claim of a trial by a worker."""

    trial_id: str
    attempt: int  # 1, 2, ...
    start_epoch: int
    host: str
    pid: int
    run_id: str | None
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    status: str  # one of ATTEMPT_STATUSES
    error: str | None
    traceback: str | None


@dataclass(frozen=True)
class EpochRow:
    """One epoch's metrics as stored."""

    trial_id: str
    epoch: int
    train_loss: float
    train_mse: float
    train_ce: float
    test_loss: float
    test_mse: float
    test_ce: float
    test_acc: float
    train_seconds: float
    masked_test_loss: float | None
    masked_test_mse: float | None
    masked_test_ce: float | None
    masked_test_acc: float | None
    attempt: int | None  # the attempt that wrote the row
    recorded_at: datetime


@dataclass(frozen=True)
class Checkpoint:
    """Where a trial's last or best checkpoint file lies."""

    trial_id: str
    kind: str  # "last" or "best"
    epoch: int
    uri: str
    sha256: str
    bytes: int
    recorded_at: datetime


@dataclass(frozen=True)
class UpsertResult:
    """What ``Store.upsert_trials`` did: trials newly added, and trials that already existed."""

    added: int
    existing: int
