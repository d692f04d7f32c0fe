"""The CRE module and the one-backward-pass gradient routing.

Gradient routing: the latent z feeds the decoder through a node that scales
the gradient flowing back into the encoder by lambda, and feeds the classifier
through one that scales it by (1 - lambda). One ``(mse + ce).backward()`` then
gives

* decoder parameters:     dL_MSE          (the decoder is trained on MSE only)
* classifier parameters:  dL_CE           (the classifier on CE only)
* encoder parameters:     lam * dL_MSE + (1 - lam) * dL_CE

which is what the published scripts obtain with three backward passes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by a constant on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged forward; gradient times ``scale`` backward (0 detaches, 1 is a no-op)."""
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return _ScaleGrad.apply(x, scale)


def route_latent(z: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(z for the decoder, z for the classifier) with the encoder gradients weighted lam / 1 - lam."""
    return scale_grad(z, lam), scale_grad(z, 1.0 - lam)


class Losses(NamedTuple):
    """Per-batch results of ``CRE.losses``: mean reconstruction loss, mean CE and the logits."""

    mse: torch.Tensor  # ()  mean squared error in the normalised image space
    ce: torch.Tensor  # ()  mean cross-entropy
    logits: torch.Tensor  # (N, classes)


class CRE(nn.Module):
    """Encoder -> z -> (decoder, classifier).

    ``model(x)`` returns ``(reconstruction, logits)``; ``model.encoder(x)`` returns z.
    Subclasses with a different training forward (masked ViT, frozen baselines)
    override ``losses``.
    """

    #: True for variants that can mask input patches during training (ViT).
    supports_masking = False

    def __init__(self, encoder: nn.Module, decoder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.classifier = classifier

    def prepare(self, data) -> None:  # noqa: ANN001 - cre.data.TensorData
        """Data-dependent setup before training (the PCA baseline fits here); a no-op by default.

        The Trainer calls it once, right after building the model and before the optimizers.
        """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)  # (N, *z_shape)
        return self.decoder(z), self.classifier(z)  # (N, C, H, W), (N, classes)

    def losses(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        lam: float,
        *,
        masked: bool = False,
        generator: torch.Generator | None = None,
    ) -> Losses:
        """MSE and CE of a batch with the encoder gradients routed by ``lam``.

        ``masked`` asks for the masked training objective where the variant has one
        (ViT); plain variants ignore it. ``generator`` drives any randomness of the
        objective (masks); None uses the global RNG.
        """
        z = self.encoder(x)
        z_dec, z_cls = route_latent(z, lam)
        recon = self.decoder(z_dec)
        logits = self.classifier(z_cls)
        return Losses(F.mse_loss(recon, x), F.cross_entropy(logits, y), logits)


def count_trainable(module: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad=True``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
