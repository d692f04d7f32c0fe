"""The CRE model family. Importing this package registers every variant."""

from cre.models.base import CRE, Losses, count_trainable, route_latent, scale_grad
from cre.models.registry import ModelInfo, build_model, get_model_info, list_models, register_model
from cre.models import baselines, cnn, fc, vit  # noqa: F401  (registers the variants)

__all__ = [
    "CRE",
    "Losses",
    "ModelInfo",
    "build_model",
    "count_trainable",
    "get_model_info",
    "list_models",
    "register_model",
    "route_latent",
    "scale_grad",
]
