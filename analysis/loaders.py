"""Trained models and test images for the latent-space and reconstruction figures.

``CheckpointModels`` turns a trial id into its ``best`` model: it asks
``locate(trial_id)`` for the checkpoint's (uri, sha256) -- from the store's
checkpoint rows or from an export's ``checkpoints.parquet`` -- reads the bytes
with ``read(uri, sha256)`` (the caller passes ``pipeline.artifacts.ArtifactRoot.read``,
which reads local paths and fsspec URIs and checks the sha256) and loads them
with ``cre.checkpoint.load_model``. Anything that goes wrong becomes
``MissingData`` with the reason, so the report lists the figure as missing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from analysis.figures import MissingData

Locate = Callable[[str], "tuple[str, str | None] | None"]
Read = Callable[[str, "str | None"], bytes]


def read_local(uri: str, sha256: str | None = None) -> bytes:
    """Read a checkpoint from a local path and check its sha256 (for callers without an artifact root)."""
    data = Path(uri).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"checkpoint {uri}: sha256 does not match the recorded one")
    return data


def locate_in_table(checkpoints: pd.DataFrame) -> Locate:
    """``locate`` over best-checkpoint rows (columns trial_id, uri, sha256), e.g. ``Tables.checkpoints``."""
    rows = {r.trial_id: (r.uri, r.sha256) for r in checkpoints.itertuples()}
    return rows.get


def locate_in_store(store: Any) -> Locate:
    """``locate`` through ``store.get_checkpoint(trial_id, "best")`` (a ``db.Store``)."""

    def locate(trial_id: str) -> tuple[str, str | None] | None:
        cp = store.get_checkpoint(trial_id, "best")
        return None if cp is None else (cp.uri, cp.sha256)

    return locate


class CheckpointModels:
    """Loads best models by trial id and test sets by dataset name, caching both."""

    def __init__(self, locate: Locate, read: Read = read_local, *, data_dir: str | None = None,
                 device: str = "cpu") -> None:
        self.locate, self.read, self.data_dir, self.device = locate, read, data_dir, device
        self._models: dict[str, Any] = {}

    def model(self, trial_id: str) -> Any:
        if trial_id in self._models:
            return self._models[trial_id]
        from cre.checkpoint import load_model

        where = self.locate(trial_id)
        if where is None:
            raise MissingData(f"no best checkpoint recorded for trial {trial_id[:12]}")
        uri, sha = where
        try:
            data = self.read(uri, sha)
        except Exception as exc:  # noqa: BLE001 - ArtifactError, OSError, fsspec errors: all "unreachable"
            raise MissingData(f"best checkpoint of trial {trial_id[:12]} unreachable: {_line(exc)}") from None
        try:
            model, _, _ = load_model(data, self.device)
        except Exception as exc:  # noqa: BLE001
            raise MissingData(f"best checkpoint of trial {trial_id[:12]} ({uri}) does not load: {_line(exc)}") from None
        self._models[trial_id] = model
        return model

    def test_set(self, dataset: str, shape: tuple[int, int, int]) -> tuple[Any, Any]:
        from cre import DatasetUnavailable, load_dataset

        try:
            data = load_dataset(dataset, device=self.device, data_dir=self.data_dir, shape=shape)
        except (DatasetUnavailable, ValueError) as exc:
            raise MissingData(f"test images of {dataset} unavailable: {_line(exc)}") from None
        return data.x_test, data.y_test


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
