"""Convolutional CREs (paper Table 2; ARCHITECTURES.md "CNN family").

Encoder blocks are ``Conv2d -> Dropout2d -> BatchNorm2d -> [MaxPool2d] -> ReLU``;
the dropout probability is ``spec.dropout`` (0.3 in the study).
"""

from __future__ import annotations

from torch import nn

from cre.models.base import CRE
from cre.models.registry import register_model


def conv_block(
    c_in: int, c_out: int, kernel: int, padding: int, dropout: float, pool_padding: int | None = None
) -> list[nn.Module]:
    """Conv2d -> Dropout2d -> BatchNorm2d -> [MaxPool2d(2, padding=pool_padding)] -> ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, padding=padding),
        nn.Dropout2d(dropout),
        nn.BatchNorm2d(c_out),
    ]
    if pool_padding is not None:
        layers.append(nn.MaxPool2d(2, padding=pool_padding))
    layers.append(nn.ReLU())
    return layers


def cnn_small(dropout: float) -> CRE:
    """1x28x28 -> z 16x4x4 -> 1x28x28; classifier 256 -> 10."""
    encoder = nn.Sequential(
        *conv_block(1, 16, 3, 1, dropout, pool_padding=0),  # (N, 16, 14, 14)
        *conv_block(16, 16, 3, 1, dropout, pool_padding=1),  # (N, 16, 8, 8)
        *conv_block(16, 16, 3, 1, dropout, pool_padding=0),  # (N, 16, 4, 4)
    )
    decoder = nn.Sequential(
        nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (N, 16, 8, 8)
        nn.ConvTranspose2d(16, 16, 3, stride=2, padding=2, output_padding=1), nn.ReLU(),  # (N, 16, 14, 14)
        nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),  # (N, 1, 28, 28)
    )
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    return CRE(encoder, decoder, classifier)


def cnn_large(dropout: float) -> CRE:
    """3x32x32 -> z 128x4x4 -> 3x32x32; convolutional classifier."""
    encoder = nn.Sequential(
        *conv_block(3, 64, 7, 3, dropout),  # (N, 64, 32, 32)
        *conv_block(64, 64, 7, 3, dropout),  # (N, 64, 32, 32)
        *conv_block(64, 128, 5, 2, dropout, pool_padding=0),  # (N, 128, 16, 16)
        *conv_block(128, 128, 5, 2, dropout, pool_padding=0),  # (N, 128, 8, 8)
        *conv_block(128, 128, 3, 1, dropout, pool_padding=0),  # (N, 128, 4, 4)
    )
    decoder = nn.Sequential(
        nn.ConvTranspose2d(128, 128, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (N, 128, 8, 8)
        nn.ConvTranspose2d(128, 128, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (N, 128, 16, 16)
        nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (N, 64, 32, 32)
        nn.ConvTranspose2d(64, 64, 3, stride=1, padding=1), nn.ReLU(),  # (N, 64, 32, 32)
        nn.ConvTranspose2d(64, 3, 3, stride=1, padding=1), nn.Tanh(),  # (N, 3, 32, 32)
    )
    classifier = nn.Sequential(
        nn.Conv2d(128, 256, 3, padding=1), nn.Dropout2d(dropout), nn.BatchNorm2d(256), nn.ReLU(),  # (N, 256, 4, 4)
        nn.Conv2d(256, 256, 1), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.BatchNorm2d(256), nn.ReLU(),  # (N, 256, 2, 2)
        nn.Flatten(), nn.Linear(256 * 2 * 2, 10),  # (N, 10)
    )
    return CRE(encoder, decoder, classifier)


@register_model(
    "cnn-small", input_shape=(1, 28, 28), fixed_latent=(16, 4, 4), options=("dropout",), family="cnn",
    description="CNN CRE, small (MNIST/FashionMNIST): 3 conv blocks, z = 16x4x4, linear classifier",
)
def _cnn_small(spec):  # noqa: ANN001 - TrialSpec
    return cnn_small(spec.dropout)


@register_model(
    "cnn-large", input_shape=(3, 32, 32), fixed_latent=(128, 4, 4), options=("dropout",), family="cnn",
    description="CNN CRE, large (CIFAR-10): 5 conv blocks, z = 128x4x4, convolutional classifier",
)
def _cnn_large(spec):  # noqa: ANN001 - TrialSpec
    return cnn_large(spec.dropout)
