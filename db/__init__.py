"""db: the results store.

One interface, ``Store(url)``: SQLite by default, PostgreSQL for clusters, the
schema created and upgraded by the Alembic revisions shipped in
``db/migrations``; calls return the frozen dataclasses of ``db.types``; every
failure is a one-line ``StoreError`` with the password masked. ``export_parquet``
writes the tables as Parquet files, streamed in batches.
"""

from db.errors import AttemptLost, StoreError, mask_url
from db.export import EXPORT_TABLES, export_parquet
from db.schema import ATTEMPT_STATUSES, CHECKPOINT_KINDS, TRIAL_STATUSES
from db.store import Store, spec_from_json, utcnow
from db.types import Attempt, Checkpoint, EpochRow, Sweep, Trial, UpsertResult
from db.urls import ENV_VAR, default_store_url, parse_store_url

__all__ = [
    "ATTEMPT_STATUSES",
    "Attempt",
    "AttemptLost",
    "CHECKPOINT_KINDS",
    "Checkpoint",
    "ENV_VAR",
    "EXPORT_TABLES",
    "EpochRow",
    "Store",
    "StoreError",
    "Sweep",
    "TRIAL_STATUSES",
    "Trial",
    "UpsertResult",
    "default_store_url",
    "export_parquet",
    "mask_url",
    "parse_store_url",
    "spec_from_json",
    "utcnow",
]
