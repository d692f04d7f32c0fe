"""A model registry in the manner of timm: one decorator registers a variant.

A variant is a builder ``fn(spec) -> CRE`` plus the facts the spec needs for
validation (input image shape, whether n is free or fixed, which optional spec
fields it uses). Adding a variant is one decorated function::

    @register_model("fc-huge", input_shape=(1, 28, 28), description="...")
    def fc_huge(spec):
        return fc_cre(spec.latent_dim, enc=(784, 1024, 1024), ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from cre.models.base import CRE
    from cre.spec import TrialSpec


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one variant."""

    name: str
    builder: Callable[["TrialSpec"], "CRE"]
    # (channels, height, width) of the images the variant takes.
    input_shape: tuple[int, int, int]
    # Shape of z when the architecture fixes it (CNN); None when n = spec.latent_dim.
    fixed_latent: tuple[int, ...] | None = None
    # Optional spec fields the variant uses: a subset of {"dropout", "drop_path", "mask_ratio"}.
    options: frozenset[str] = field(default_factory=frozenset)
    # Extra constraint on n: returns a problem description ("must be ...") or "" when fine.
    latent_check: Callable[[int], str] | None = None
    # Extra constraint on the whole spec: returns a one-line error naming the field, or "" when fine.
    spec_check: Callable[["TrialSpec"], str] | None = None
    # Model family, e.g. "fc", "cnn", "vit", "pca", "rp" (used by reports to group variants).
    family: str = ""
    description: str = ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    fixed_latent: tuple[int, ...] | None = None,
    options: tuple[str, ...] | frozenset[str] = (),
    latent_check: Callable[[int], str] | None = None,
    spec_check: Callable[["TrialSpec"], str] | None = None,
    family: str = "",
    description: str = "",
) -> Callable[[Callable[["TrialSpec"], "CRE"]], Callable[["TrialSpec"], "CRE"]]:
    """Register ``fn(spec) -> CRE`` under ``name``; re-registering a name is an error."""
    allowed = {"dropout", "drop_path", "mask_ratio"}
    bad = set(options) - allowed
    if bad:
        raise ValueError(f"options must be a subset of {sorted(allowed)}, got {sorted(bad)}")

    def decorate(fn: Callable[["TrialSpec"], "CRE"]) -> Callable[["TrialSpec"], "CRE"]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(
            name=name,
            builder=fn,
            input_shape=tuple(input_shape),
            fixed_latent=None if fixed_latent is None else tuple(fixed_latent),
            options=frozenset(options),
            latent_check=latent_check,
            spec_check=spec_check,
            family=family or name.split("-")[0],
            description=description or _first_line(fn.__doc__),
        )
        return fn

    return decorate


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def list_models() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; ``KeyError`` naming the known variants otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def build_model(spec: "TrialSpec") -> "CRE":
    """Build the (untrained) CRE a spec describes: ``.encoder``, ``.decoder``, ``.classifier``."""
    return get_model_info(spec.model).builder(spec)
