"""The results store's tables: one module, SQLAlchemy 2.x declarative ORM.

Six tables (the Alembic revisions under ``db/migrations/versions`` create exactly
this; a test compares the two on SQLite and PostgreSQL):

* ``sweeps``        one row per named sweep (a grid file launched under a name);
* ``trials``        one row per trial; the primary key is the spec id (sha256 of the
                    spec's canonical JSON), so a spec is stored once however often it
                    is launched;
* ``sweep_trials``  which trials belong to which sweep (a trial may be in several);
* ``attempts``      every time a worker claimed a trial: where, when, how it ended;
* ``epochs``        what every epoch measured; primary key (trial_id, epoch), so
                    writing an epoch again replaces it;
* ``checkpoints``   the ``last`` and ``best`` checkpoint files of a trial.

Every column carries a ``comment`` (stored in the database where the dialect
supports it, so ``\\d+ trials`` in psql documents it too). Timestamps are
timezone-aware UTC (``UTCDateTime``). Status columns are constrained by CHECK
constraints to the constants below. These classes never leave ``db``: the
``Store`` turns rows into the frozen dataclasses of ``db.types``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TRIAL_STATUSES: tuple[str, ...] = ("pending", "running", "completed", "failed", "interrupted")
"""Every status a trial can have. pending: never run or reset; running: an attempt holds it;
completed: trained to its last epoch; failed: its last attempt raised; interrupted: its last
attempt was stopped (Ctrl-C, lost heartbeat, Ray retry) and it may be claimed again."""

ATTEMPT_STATUSES: tuple[str, ...] = ("running", "completed", "failed", "interrupted")
"""Every status an attempt can have (an attempt is never pending: it exists once claimed)."""

CHECKPOINT_KINDS: tuple[str, ...] = ("last", "best")
"""last: the newest state (model, optimisers, RNG) to resume from; best: the lowest test loss."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, identical on every backend (migrations refer to them)."""


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are
    converted to UTC before they are written (as ISO text that sorts in time
    order) and get ``tzinfo=UTC`` back when read. Naive datetimes are refused:
    they are the bug this type exists to prevent.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware (UTC), got naive {value!r}")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base; its ``metadata`` is what the migrations must produce."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SweepORM(Base):
    """A named sweep: the grid it was expanded from. Launching a grid under a name creates it."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True,
                                    comment="Surrogate key, referenced by sweep_trials.")
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True,
                                      comment="The sweep's name, unique (e.g. the grid file's stem).")
    grid_text: Mapped[str] = mapped_column(Text, nullable=False, default="",
                                           comment="The grid file's text as last launched (YAML).")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 comment="When the sweep was first created (UTC).")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 comment="When grid_text last changed (UTC).")


class TrialORM(Base):
    """One trial: a TrialSpec, its progress and, once completed, its best epoch."""

    __tablename__ = "trials"
    __table_args__ = (
        CheckConstraint(_in("status", TRIAL_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
        Index(None, "status"),
        Index(None, "model", "dataset"),
        Index(None, "latent_dim"),
        Index(None, "lam"),
        Index(None, "mask_ratio"),
        Index(None, "mask_variant"),
        Index(None, "seed"),
        Index(None, "epochs"),
        Index(None, "updated_at"),
    )

    trial_id: Mapped[str] = mapped_column(String(64), primary_key=True,
                                          comment="TrialSpec.spec_id: sha256 hex of the spec's canonical JSON.")
    spec: Mapped[str] = mapped_column(Text, nullable=False,
                                      comment="The spec's canonical JSON (sha256 of this text is trial_id).")
    model: Mapped[str] = mapped_column(String(64), nullable=False, comment="Spec field: registered model variant.")
    dataset: Mapped[str] = mapped_column(String(64), nullable=False, comment="Spec field: dataset name.")
    latent_dim: Mapped[int | None] = mapped_column(Integer, nullable=True,
                                                   comment="Spec field: n, latent size / embedding width; NULL when "
                                                           "the architecture fixes it.")
    lam: Mapped[float] = mapped_column(Float, nullable=False,
                                       comment="Spec field: lambda, weight of MSE in the encoder's loss.")
    mask_ratio: Mapped[float] = mapped_column(Float, nullable=False,
                                              comment="Spec field: fraction of patches masked in training (0 = off).")
    mask_variant: Mapped[str | None] = mapped_column(String(8), nullable=True,
                                                     comment="Spec field: masking loss variant v1/v2; NULL when off.")
    seed: Mapped[int] = mapped_column(Integer, nullable=False, comment="Spec field: seed of everything random.")
    epochs: Mapped[int] = mapped_column(Integer, nullable=False, comment="Spec field: number of training epochs.")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending",
                                        comment="pending, running, completed, failed or interrupted.")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                          comment="How many attempts were claimed (the newest is attempts.attempt = "
                                                  "this).")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True,
                                                   comment="First line of the last failure's error; NULL once "
                                                           "completed.")
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True,
                                                   comment="Epoch with the lowest test_loss (earliest on ties); set "
                                                           "when completed.")
    best_test_loss: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_loss at best_epoch.")
    best_test_mse: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_mse at best_epoch.")
    best_test_ce: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_ce at best_epoch.")
    best_test_acc: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_acc at best_epoch.")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 comment="When the trial was first upserted (UTC).")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 comment="When status or results last changed (UTC).")


class SweepTrialORM(Base):
    """Membership: trial ``trial_id`` is part of sweep ``sweep_id`` (many-to-many)."""

    __tablename__ = "sweep_trials"
    __table_args__ = (Index(None, "trial_id"),)

    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True,
                                          comment="sweeps.id of the sweep.")
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id", ondelete="CASCADE"), primary_key=True,
                                          comment="trials.trial_id of the member trial.")


class AttemptORM(Base):
    """One claim of a trial by a worker, from start to its end (or to being found stale)."""

    __tablename__ = "attempts"
    __table_args__ = (
        CheckConstraint(_in("status", ATTEMPT_STATUSES), name="status"),
        Index(None, "status"),
        Index(None, "run_id"),
    )

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id", ondelete="CASCADE"), primary_key=True,
                                          comment="The trial attempted.")
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False,
                                         comment="1, 2, ...: the trial's attempts counter when claimed.")
    start_epoch: Mapped[int] = mapped_column(Integer, nullable=False, default=1,
                                             comment="First epoch this attempt trains (> 1 when resumed from a "
                                                     "checkpoint).")
    host: Mapped[str] = mapped_column(String(255), nullable=False, comment="Hostname of the worker.")
    pid: Mapped[int] = mapped_column(Integer, nullable=False, comment="Process id of the worker.")
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                               comment="Id of the launch (driver run) that scheduled the attempt.")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, comment="When claimed (UTC).")
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                   comment="Last sign of life: claim, heartbeat or epoch (UTC).")
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True,
                                                         comment="When it ended (UTC); NULL while running.")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running",
                                        comment="running, completed, failed or interrupted.")
    error: Mapped[str | None] = mapped_column(Text, nullable=True,
                                              comment="Why it failed or was interrupted (full message).")
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True,
                                                  comment="Python traceback of a failure, if any.")


class EpochORM(Base):
    """What one epoch of one trial measured. Written again (a resumed attempt): replaced."""

    __tablename__ = "epochs"
    __table_args__ = (Index(None, "recorded_at"),)

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id", ondelete="CASCADE"), primary_key=True,
                                          comment="The trial.")
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, comment="1-based epoch.")
    train_loss: Mapped[float] = mapped_column(Float, nullable=False,
                                              comment="lam * train_mse + (1 - lam) * train_ce, epoch mean.")
    train_mse: Mapped[float] = mapped_column(Float, nullable=False,
                                             comment="Reconstruction loss trained on (masked objective when masking).")
    train_ce: Mapped[float] = mapped_column(Float, nullable=False, comment="Cross-entropy on the training set.")
    test_loss: Mapped[float] = mapped_column(Float, nullable=False,
                                             comment="lam * test_mse + (1 - lam) * test_ce: the best-epoch criterion.")
    test_mse: Mapped[float] = mapped_column(Float, nullable=False, comment="Reconstruction MSE on the test set.")
    test_ce: Mapped[float] = mapped_column(Float, nullable=False, comment="Cross-entropy on the test set.")
    test_acc: Mapped[float] = mapped_column(Float, nullable=False, comment="Test accuracy, a fraction in [0, 1].")
    train_seconds: Mapped[float] = mapped_column(Float, nullable=False,
                                                 comment="Wall seconds of the training pass (no evaluation).")
    masked_test_loss: Mapped[float | None] = mapped_column(Float, nullable=True,
                                                           comment="test_loss with training-style masking (masked "
                                                                   "ViT only).")
    masked_test_mse: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_mse with masking.")
    masked_test_ce: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_ce with masking.")
    masked_test_acc: Mapped[float | None] = mapped_column(Float, nullable=True, comment="test_acc with masking.")
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True,
                                                comment="The attempt that wrote this row (last writer wins).")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                  comment="When written (UTC).")


class CheckpointORM(Base):
    """Where a trial's ``last`` or ``best`` checkpoint file lies; one row per kind, replaced."""

    __tablename__ = "checkpoints"
    __table_args__ = (CheckConstraint(_in("kind", CHECKPOINT_KINDS), name="kind"),)

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id", ondelete="CASCADE"), primary_key=True,
                                          comment="The trial.")
    kind: Mapped[str] = mapped_column(String(8), primary_key=True, comment="last or best.")
    epoch: Mapped[int] = mapped_column(Integer, nullable=False, comment="Epoch whose state the file holds.")
    uri: Mapped[str] = mapped_column(Text, nullable=False,
                                     comment="Path or URI of the file under the artifact root.")
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, comment="sha256 hex of the file's bytes.")
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, comment="File size in bytes.")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, comment="When written (UTC).")


metadata = Base.metadata
"""The schema the code expects; ``alembic upgrade head`` on an empty database produces exactly this."""

EPOCH_METRICS: tuple[str, ...] = (
    "train_loss", "train_mse", "train_ce", "test_loss", "test_mse", "test_ce", "test_acc", "train_seconds",
)
"""Metric columns every epoch row must have (NOT NULL)."""

OPTIONAL_EPOCH_METRICS: tuple[str, ...] = ("masked_test_loss", "masked_test_mse", "masked_test_ce", "masked_test_acc")
"""Metric columns that may be NULL (masked ViT evaluation)."""

TRIAL_SPEC_COLUMNS: tuple[str, ...] = ("model", "dataset", "latent_dim", "lam", "mask_ratio", "mask_variant", "seed",
                                       "epochs")
"""Spec fields copied into indexed trials columns (the full spec is the ``spec`` JSON)."""
