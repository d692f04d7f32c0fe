"""Fully connected CREs (paper Table 1; ARCHITECTURES.md "FC family").

Every hidden layer is Linear + ReLU, including the encoder's last one (z is
post-ReLU); the decoder ends in Linear -> 784, tanh, unflatten to 1x28x28.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from cre.models.base import CRE
from cre.models.registry import register_model

IMAGE = (1, 28, 28)
PIXELS = 28 * 28


def mlp(widths: Sequence[int], *, last_activation: nn.Module | None) -> nn.Sequential:
    """Linear layers through ``widths`` with ReLU between them and ``last_activation`` after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if last_activation is not None:
        layers.append(last_activation)
    return nn.Sequential(*layers)


def fc_encoder(hidden: Sequence[int], n: int, image: tuple[int, int, int] = IMAGE) -> nn.Sequential:
    """Flatten -> Linear/ReLU through ``hidden`` -> Linear(n) -> ReLU."""
    flat = image[0] * image[1] * image[2]
    return nn.Sequential(nn.Flatten(), *mlp([flat, *hidden, n], last_activation=nn.ReLU()))


def fc_decoder(hidden: Sequence[int], n: int, image: tuple[int, int, int] = IMAGE) -> nn.Sequential:
    """Linear/ReLU from n through ``hidden`` -> Linear(pixels) -> tanh -> unflatten to the image."""
    flat = image[0] * image[1] * image[2]
    return nn.Sequential(*mlp([n, *hidden, flat], last_activation=nn.Tanh()), nn.Unflatten(1, image))


def fc_classifier(hidden: Sequence[int], n: int, classes: int = 10) -> nn.Sequential:
    """Linear/ReLU from n through ``hidden`` -> Linear(classes) (logits)."""
    return mlp([n, *hidden, classes], last_activation=None)


# size -> (encoder hidden widths, classifier hidden widths); the decoder mirrors the encoder.
FC_SIZES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "small": ((), ()),
    "medium": ((616,), (12,)),
    "large": ((716, 684, 616), (64,)),
}


def fc_cre(size: str, n: int) -> CRE:
    """The FC CRE of one size with latent size n."""
    enc_hidden, cls_hidden = FC_SIZES[size]
    return CRE(
        fc_encoder(enc_hidden, n),
        fc_decoder(tuple(reversed(enc_hidden)), n),
        fc_classifier(cls_hidden, n),
    )


def _register(size: str) -> None:
    enc_hidden, cls_hidden = FC_SIZES[size]
    widths = " -> ".join(map(str, (784, *enc_hidden, "n")))

    @register_model(
        f"fc-{size}",
        input_shape=IMAGE,
        family="fc",
        description=f"FC CRE, {size}: encoder {widths}; classifier n -> {' -> '.join(map(str, (*cls_hidden, 10)))}",
    )
    def build(spec):  # noqa: ANN001 - TrialSpec
        return fc_cre(size, spec.latent_dim)


for _size in FC_SIZES:
    _register(_size)
