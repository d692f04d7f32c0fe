"""Checkpoint payloads: what a ``last`` (resume) and a ``best`` (analysis) checkpoint hold.

These functions turn payloads into bytes and back; where the bytes go (a local
file, a shared filesystem, an object store) is the caller's business.

* ``last``: ``Trainer.state_dict()`` - model, the three optimizers, RNG states,
  epoch and metric history: enough to continue the trial exactly.
* ``best``: the spec, the best epoch, its metrics and the model weights.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from cre.engine import EpochMetrics, Trainer
from cre.models import CRE, build_model
from cre.spec import TrialSpec

BEST_FORMAT = 1


def best_payload(trainer: Trainer) -> dict[str, Any]:
    """The ``best`` checkpoint of the epoch just run (call when ``trainer.is_best``)."""
    metrics = trainer.history[-1]
    return {
        "kind": "best",
        "format": BEST_FORMAT,
        "spec": trainer.spec.to_dict(),
        "spec_id": trainer.spec.spec_id,
        "epoch": metrics.epoch,
        "metrics": metrics.to_dict(),
        "model": trainer.model_state(),
    }


def to_bytes(payload: dict[str, Any]) -> bytes:
    """Serialise a payload with ``torch.save``."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def from_bytes(data: bytes, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Inverse of ``to_bytes`` (``weights_only``: no arbitrary code runs on load)."""
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a local file atomically: a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_file(payload: dict[str, Any], path: str | os.PathLike) -> tuple[str, int]:
    """Write a payload atomically; returns (sha256, bytes)."""
    data = to_bytes(payload)
    write_atomic(path, data)
    return sha256_hex(data), len(data)


def load_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return from_bytes(Path(path).read_bytes(), map_location)


def load_model(
    payload: dict[str, Any] | bytes | str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CRE, TrialSpec, EpochMetrics | None]:
    """A trained model (eval mode) from a ``best`` or ``last`` checkpoint: (model, spec, metrics)."""
    if isinstance(payload, (bytes, bytearray)):
        payload = from_bytes(bytes(payload), device)
    elif not isinstance(payload, dict):
        payload = load_file(payload, device)
    spec = TrialSpec.from_dict(payload["spec"])
    model = build_model(spec).to(device)
    model.load_state_dict(payload["model"])
    model.eval()
    if "metrics" in payload:
        metrics = EpochMetrics.from_dict(payload["metrics"])
    elif payload.get("history"):
        metrics = EpochMetrics.from_dict(payload["history"][-1])
    else:
        metrics = None
    return model, spec, metrics
