"""The trial spec: every field that changes a result, and nothing else.

A trial *is* its spec. ``TrialSpec.spec_id`` is the sha256 of the spec's
canonical JSON (sorted keys, floats normalised to Python floats and written
with ``repr``), so the same spec always maps to the same id, on any machine and
in any process. Python's ``hash()`` is never used: it is salted per process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

LAMBDAS_PAPER = (0.0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99, 1.0)
"""The twelve lambda values of the study (paper, section 3 and Appendix A.2)."""

MASK_VARIANTS = ("v1", "v2")
"""v1: reconstruction loss on the masked patches only (MAE); v2: on the whole image."""


@dataclass(frozen=True)
class TrialSpec:
    """One training run of a Classification-Reconstruction Encoder.

    Construction validates every field; a bad value raises ``ValueError`` that
    names the field, the value and what is allowed.
    """

    # Registered model variant (see ``cre.list_models()``), e.g. "fc-small", "cnn-large", "vit-small".
    model: str
    # Dataset name: mnist, fashion_mnist, cifar10, digits (offline default) or synthetic (tests).
    dataset: str
    # n: latent size (FC, baselines) or embedding width (ViT); None where the architecture fixes it (CNN).
    latent_dim: int | None = None
    # lambda: the encoder is trained on lam * MSE + (1 - lam) * CE; must lie in [0, 1].
    lam: float = 0.5
    # Number of training epochs (the paper used 100 ... 700 depending on model and dataset).
    epochs: int = 100
    # Mini-batch size (512 in the published scripts).
    batch_size: int = 512
    # Adam learning rate of the encoder.
    lr_encoder: float = 1e-3
    # Adam learning rate of the decoder.
    lr_decoder: float = 1e-3
    # Adam learning rate of the classifier.
    lr_classifier: float = 1e-3
    # Seed of everything random in the trial: initialisation, batch order, dropout, masks, augmentation.
    seed: int = 0
    # Dropout2d probability of CNN variants (0.3 in the study); must be 0 for variants without dropout.
    dropout: float = 0.0
    # Stochastic-depth (drop-path) rate of ViT variants (0.2 on CIFAR-10 in the study); 0 elsewhere.
    drop_path: float = 0.0
    # Random rotation augmentation, in degrees, applied per batch during training (15 on CIFAR-10); 0 = off.
    rotation: float = 0.0
    # Fraction of patch tokens masked during training (ViT only; 0.66 in the study); 0 = no masking.
    mask_ratio: float = 0.0
    # Masking loss variant, "v1" or "v2" (see MASK_VARIANTS); None when mask_ratio is 0.
    mask_variant: str | None = None

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        coerce = {
            "lam": float, "lr_encoder": float, "lr_decoder": float, "lr_classifier": float,
            "dropout": float, "drop_path": float, "rotation": float, "mask_ratio": float,
        }
        for name, kind in coerce.items():
            object.__setattr__(self, name, _number(name, getattr(self, name), kind))
        for name in ("epochs", "batch_size", "seed"):
            object.__setattr__(self, name, _integer(name, getattr(self, name)))
        if self.latent_dim is not None:
            object.__setattr__(self, "latent_dim", _integer("latent_dim", self.latent_dim))
        _validate(self)

    # ---------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialSpec":
        """Inverse of ``to_dict``; unknown keys are an error naming them and the known fields."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown TrialSpec field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, floats as Python floats: the text the id hashes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @property
    def spec_id(self) -> str:
        """sha256 hex digest of ``canonical_json()``; stable across processes and machines."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def replace(self, **changes: Any) -> "TrialSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def short(self) -> str:
        """A compact human-readable label, e.g. ``fc-small/digits n=16 lam=0.5 seed=0``."""
        n = "" if self.latent_dim is None else f" n={self.latent_dim}"
        mask = "" if not self.mask_ratio else f" mask={self.mask_ratio:g}{self.mask_variant}"
        return f"{self.model}/{self.dataset}{n} lam={self.lam:g}{mask} seed={self.seed}"


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialSpec))
"""Every TrialSpec field, in declaration order."""


def _number(name: str, value: Any, kind: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    out = kind(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _validate(spec: TrialSpec) -> None:
    # Imported here: the registries import torch modules, the spec module itself stays light.
    from cre.data import DATASETS
    from cre.models.registry import get_model_info, list_models

    if spec.dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(sorted(DATASETS))}, got {spec.dataset!r}")
    if not isinstance(spec.model, str):
        raise ValueError(f"model must be a string, got {spec.model!r}")
    try:
        info = get_model_info(spec.model)
    except KeyError:
        raise ValueError(f"model must be one of {', '.join(list_models())}, got {spec.model!r}") from None

    if not 0.0 <= spec.lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {spec.lam!r}")
    if spec.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {spec.epochs!r}")
    if spec.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {spec.batch_size!r}")
    for name in ("lr_encoder", "lr_decoder", "lr_classifier"):
        if getattr(spec, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(spec, name)!r}")
    if spec.seed < 0:
        raise ValueError(f"seed must be >= 0, got {spec.seed!r}")

    if info.fixed_latent is not None:
        if spec.latent_dim is not None:
            raise ValueError(
                f"latent_dim must be None for {spec.model} (its architecture fixes z to "
                f"{'x'.join(map(str, info.fixed_latent))}), got {spec.latent_dim!r}"
            )
    elif spec.latent_dim is None:
        raise ValueError(f"latent_dim is required for {spec.model}: an integer > 0 (n), got None")
    elif spec.latent_dim <= 0:
        raise ValueError(f"latent_dim must be > 0, got {spec.latent_dim!r}")
    if info.latent_check is not None and spec.latent_dim is not None:
        problem = info.latent_check(spec.latent_dim)
        if problem:
            raise ValueError(f"latent_dim {problem} for {spec.model}, got {spec.latent_dim!r}")

    ds = DATASETS[spec.dataset]
    if ds.shape is not None and tuple(ds.shape) != tuple(info.input_shape):
        fits = sorted(n for n, d in DATASETS.items() if d.shape in (None, tuple(info.input_shape)))
        raise ValueError(
            f"model {spec.model} takes {'x'.join(map(str, info.input_shape))} images but dataset "
            f"{spec.dataset} has {'x'.join(map(str, ds.shape))}; datasets allowed for {spec.model}: {', '.join(fits)}"
        )

    for name, lo, hi in (("dropout", 0.0, 1.0), ("drop_path", 0.0, 1.0), ("mask_ratio", 0.0, 1.0)):
        value = getattr(spec, name)
        if not lo <= value < hi:
            raise ValueError(f"{name} must be in [{lo:g}, {hi:g}), got {value!r}")
        if value and name not in info.options:
            users = sorted(m for m in list_models() if name in get_model_info(m).options)
            raise ValueError(
                f"{name} must be 0 for {spec.model} (it has no use for it); models using {name}: "
                f"{', '.join(users) or 'none'}, got {value!r}"
            )
    if spec.rotation < 0 or spec.rotation > 180:
        raise ValueError(f"rotation must be in [0, 180] degrees, got {spec.rotation!r}")
    if spec.mask_ratio:
        if spec.mask_variant not in MASK_VARIANTS:
            raise ValueError(
                f"mask_variant must be one of {', '.join(MASK_VARIANTS)} when mask_ratio > 0, got {spec.mask_variant!r}"
            )
    elif spec.mask_variant is not None:
        raise ValueError(f"mask_variant must be None when mask_ratio is 0 (masking off), got {spec.mask_variant!r}")
    if info.spec_check is not None:
        problem = info.spec_check(spec)
        if problem:
            raise ValueError(problem)
