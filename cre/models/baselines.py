"""Baseline representations of paper Figure 7: PCA and random projection (RP).

z is a fixed linear map of the normalised, flattened image; only an FC decoder
and an FC classifier (the FC family's sizes, ``cre.models.fc``) are trained on
it. The encoder has no trainable parameters, so lambda has no effect on it (it
gets no optimizer; its projection lives in buffers and so in every checkpoint).

* PCA: z = (x - mean) @ V_n, V_n the first n principal axes of the training
  images. The fit needs the data, so it happens in ``CRE.prepare(data)``, which
  the Trainer calls once after building the model. z is the raw projection,
  not whitened and not passed through a ReLU (unlike the FC encoders' z).
* RP: z = x @ R, R a Gaussian (n entries N(0, 1/n) per input pixel, as
  scikit-learn's GaussianRandomProjection) drawn from a generator seeded by
  ``spec.seed``: the same for every run with one seed, on any device.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from cre.models.base import CRE
from cre.models.fc import FC_SIZES, fc_classifier, fc_decoder
from cre.models.registry import register_model

IMAGE = (1, 28, 28)
PIXELS = 28 * 28


class ProjectionEncoder(nn.Module):
    """Frozen linear encoder: (N, C, H, W) -> z = (flatten(x) - mean) @ projection.T, (N, n)."""

    def __init__(self, n: int, pixels: int = PIXELS) -> None:
        super().__init__()
        self.register_buffer("projection", torch.zeros(n, pixels))  # (n, P): one direction per row
        self.register_buffer("mean", torch.zeros(pixels))  # (P,): subtracted first (zero for RP)
        self.register_buffer("fitted", torch.tensor(False))  # saved, so loaded checkpoints count as fitted
        self._fitted = False  # Python copy of ``fitted``: checked per batch without a device sync
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_fitted())

    def _sync_fitted(self) -> None:
        self._fitted = bool(self.fitted)

    def set_projection(self, projection: torch.Tensor, mean: torch.Tensor | None = None) -> None:
        """Install a (n, P) projection (and a (P,) mean); marks the encoder fitted."""
        if tuple(projection.shape) != tuple(self.projection.shape):
            raise ValueError(f"projection must be {tuple(self.projection.shape)}, got {tuple(projection.shape)}")
        self.projection.copy_(projection)
        if mean is not None:
            self.mean.copy_(mean)
        self.fitted.fill_(True)
        self._fitted = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fitted:
            raise RuntimeError(
                "PCA encoder is not fitted: call model.prepare(data) (the Trainer does) or load a checkpoint"
            )
        return (x.flatten(1) - self.mean) @ self.projection.T  # (N, n)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, n) -> (N, P): the linear back-projection (for PCA: the rank-n PCA reconstruction)."""
        return z @ self.projection + self.mean


# ----------------------------------------------------------------------------- PCA fit
_PCA_CACHE: list[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = []
_PCA_CACHE_SIZE = 4
_PCA_LOCK = threading.Lock()
_CHUNK = 8192


def pca_fit(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every principal axis of ``x_train`` (N, ...): (mean (P,), axes (P, P) by decreasing variance).

    Exact: eigendecomposition of the float64 covariance, accumulated in chunks on
    the data's device. Signs as scikit-learn's ``svd_flip`` (largest |entry| of
    each axis positive), so fits are identical across runs. Cached per training
    tensor (by identity) within the process; slice the first n rows for rank n.
    """
    with _PCA_LOCK:
        for x, fit in _PCA_CACHE:
            if x is x_train:
                return fit
    X = x_train.flatten(1)  # (N, P)
    mean = X.mean(dim=0, dtype=torch.float64)  # (P,)
    cov = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], _CHUNK):
        xc = X[start : start + _CHUNK].double() - mean  # (chunk, P)
        cov += xc.T @ xc
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues, axes in columns
    axes = vecs.flip(1).T.contiguous()  # (P, P): rows, by decreasing variance
    big = axes.abs().argmax(dim=1, keepdim=True)
    axes = axes * torch.sign(torch.gather(axes, 1, big))
    fit = (mean.float(), axes.float())
    with _PCA_LOCK:
        _PCA_CACHE.insert(0, (x_train, fit))
        del _PCA_CACHE[_PCA_CACHE_SIZE:]
    return fit


def clear_pca_cache() -> None:
    """Forget cached PCA fits (and the training tensors they keep alive)."""
    with _PCA_LOCK:
        _PCA_CACHE.clear()


def random_projection(n: int, pixels: int, seed: int) -> torch.Tensor:
    """(n, P) Gaussian with entries N(0, 1/n), from a CPU generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, pixels, generator=g) / n**0.5


# ----------------------------------------------------------------------------- the CREs
class ProjectionCRE(CRE):
    """Frozen projection encoder + trainable FC decoder and classifier of one FC size."""

    def __init__(self, kind: str, size: str, n: int, seed: int = 0) -> None:
        if kind not in ("pca", "rp"):
            raise ValueError(f"kind must be pca or rp, got {kind!r}")
        enc_hidden, cls_hidden = FC_SIZES[size]
        super().__init__(
            ProjectionEncoder(n),
            fc_decoder(tuple(reversed(enc_hidden)), n),
            fc_classifier(cls_hidden, n),
        )
        self.kind = kind
        if kind == "rp":
            self.encoder.set_projection(random_projection(n, PIXELS, seed))

    def prepare(self, data) -> None:  # noqa: ANN001 - cre.data.TensorData
        """PCA: fit the projection on ``data.x_train`` (the normalised training images)."""
        if self.kind != "pca":
            return
        mean, axes = pca_fit(data.x_train)
        n = self.encoder.projection.shape[0]
        dev = self.encoder.projection.device
        self.encoder.set_projection(axes[:n].to(dev), mean.to(dev))


def _register(kind: str, size: str) -> None:
    enc_hidden, cls_hidden = FC_SIZES[size]
    what = "first n principal components of the training images" if kind == "pca" else "seeded Gaussian random projection"

    @register_model(
        f"{kind}-{size}",
        input_shape=IMAGE,
        latent_check=(lambda n: "" if n <= PIXELS else f"must be <= {PIXELS} (pixels)") if kind == "pca" else None,
        family=kind,
        description=(
            f"{kind.upper()} baseline, {size} heads: z = {what} (frozen); FC decoder "
            f"{' -> '.join(map(str, ('n', *reversed(enc_hidden), PIXELS)))}, classifier "
            f"{' -> '.join(map(str, ('n', *cls_hidden, 10)))}"
        ),
    )
    def build(spec):  # noqa: ANN001 - TrialSpec
        return ProjectionCRE(kind, size, spec.latent_dim, seed=spec.seed)


for _kind in ("pca", "rp"):
    for _size in FC_SIZES:
        _register(_kind, _size)
