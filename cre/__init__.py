"""cre: the Classification-Reconstruction Encoder family, trial specs, data and the training engine.

Pure PyTorch: no Ray, no SQL, no files except those the caller asks for.
"""

from cre.spec import FIELD_NAMES, LAMBDAS_PAPER, MASK_VARIANTS, TrialSpec
from cre.models import CRE, ModelInfo, build_model, count_trainable, get_model_info, list_models, register_model
from cre.data import DATASETS, DatasetUnavailable, TensorData, load_dataset
from cre.engine import (
    METRIC_NAMES,
    EpochMetrics,
    NonFiniteLossError,
    Trainer,
    TrainResult,
    best_epoch,
    resolve_device,
    train,
)

__all__ = [
    "CRE",
    "DATASETS",
    "DatasetUnavailable",
    "EpochMetrics",
    "FIELD_NAMES",
    "LAMBDAS_PAPER",
    "MASK_VARIANTS",
    "METRIC_NAMES",
    "ModelInfo",
    "NonFiniteLossError",
    "TensorData",
    "TrainResult",
    "Trainer",
    "TrialSpec",
    "best_epoch",
    "build_model",
    "count_trainable",
    "get_model_info",
    "list_models",
    "load_dataset",
    "register_model",
    "resolve_device",
    "train",
]
