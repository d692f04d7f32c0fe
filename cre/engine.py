"""The training engine: one trial, epoch by epoch, resumable.

``Trainer`` holds the model, the three Adam optimizers (encoder, decoder,
classifier, each with its own learning rate), the data on the device and the
random state. ``run_epoch()`` trains one epoch with gradient routing in one
backward pass and measures the full test set in eval mode. ``state_dict()`` /
``load_state_dict()`` capture everything needed to continue exactly where it
stopped: training to epoch k, saving, loading and training to E gives the same
metrics as training straight to E.

``train(spec, ...)`` is the convenience loop around it, with an epoch callback.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from cre.data import TensorData, load_dataset, random_rotation
from cre.models import CRE, build_model, get_model_info
from cre.spec import TrialSpec

STATE_FORMAT = 1
EVAL_BATCH = 2048
MASK_EVAL_SEED = 2024


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or inf; the trial cannot continue."""


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured. Losses are means over samples; test metrics are unmasked."""

    epoch: int  # 1-based
    train_loss: float  # lam * train_mse + (1 - lam) * train_ce, epoch mean
    train_mse: float  # reconstruction loss that was trained (masked objective when masking is on)
    train_ce: float
    test_loss: float  # lam * test_mse + (1 - lam) * test_ce: the "best epoch" criterion
    test_mse: float
    test_ce: float
    test_acc: float  # fraction in [0, 1]
    train_seconds: float  # wall seconds of the training pass (excludes evaluation)
    masked_test_loss: float | None = None  # the same metrics with training-style masking (masked ViT only)
    masked_test_mse: float | None = None
    masked_test_ce: float | None = None
    masked_test_acc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EpochMetrics":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EpochMetrics))


def best_epoch(history: list[EpochMetrics]) -> int | None:
    """The epoch with the lowest weighted test loss (the earliest on ties); None before any epoch."""
    if not history:
        return None
    return min(history, key=lambda m: (m.test_loss, m.epoch)).epoch


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each batch; a lone last sample joins the batch before it (BatchNorm needs two)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto": CUDA when available, else CPU. Anything else as given (validated)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use cpu")
    return dev


class Trainer:
    """Trains one ``TrialSpec``; see the module docstring."""

    def __init__(
        self,
        spec: TrialSpec,
        *,
        device: str | torch.device | None = None,
        data_dir: str | None = None,
        data: TensorData | None = None,
        threads: int | None = None,
    ) -> None:
        self.spec = spec
        self.device = resolve_device(device)
        if threads:
            torch.set_num_threads(int(threads))
        info = get_model_info(spec.model)
        self.data = data if data is not None else load_dataset(
            spec.dataset, device=self.device, data_dir=data_dir, shape=info.input_shape
        )
        # Everything random in the trial derives from the seed: model init and dropout/masks
        # use the global generators (seeded here), batch order and rotations their own.
        torch.manual_seed(spec.seed)
        self.model: CRE = build_model(spec).to(self.device)
        self.model.prepare(self.data)  # data-dependent setup (PCA baselines fit here); usually a no-op
        self.optimizers = {
            "encoder": self._adam(self.model.encoder, spec.lr_encoder),
            "decoder": self._adam(self.model.decoder, spec.lr_decoder),
            "classifier": self._adam(self.model.classifier, spec.lr_classifier),
        }
        self.batch_gen = torch.Generator().manual_seed(spec.seed)
        self.aug_gen = torch.Generator().manual_seed(spec.seed + 1)
        self.epoch = 0
        self.history: list[EpochMetrics] = []

    def _adam(self, module: torch.nn.Module, lr: float) -> torch.optim.Optimizer | None:
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:  # frozen modules (baseline encoders) have nothing to optimise
            return None
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=lr, fused=fused)

    # ------------------------------------------------------------------ train
    def run_epoch(self) -> EpochMetrics:
        """Train one epoch, evaluate on the test set, append to ``history`` and return the metrics."""
        spec, model, data = self.spec, self.model, self.data
        lam = spec.lam
        n = data.x_train.shape[0]
        perm = torch.randperm(n, generator=self.batch_gen).to(self.device)
        opts = [o for o in self.optimizers.values() if o is not None]
        masked = bool(spec.mask_ratio)
        sum_mse = torch.zeros((), device=self.device)
        sum_ce = torch.zeros((), device=self.device)
        model.train()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        for start, end in batch_bounds(n, spec.batch_size):
            idx = perm[start:end]
            x = data.x_train[idx]  # (B, C, H, W)
            y = data.y_train[idx]  # (B,)
            if spec.rotation:
                x = random_rotation(x, spec.rotation, self.aug_gen)
            mse, ce, _ = model.losses(x, y, lam, masked=masked)
            for o in opts:
                o.zero_grad(set_to_none=True)
            (mse + ce).backward()  # routed: see cre.models.base
            for o in opts:
                o.step()
            b = idx.shape[0]
            sum_mse += mse.detach() * b
            sum_ce += ce.detach() * b
        train_mse = float(sum_mse) / n
        train_ce = float(sum_ce) / n
        train_seconds = time.perf_counter() - t0
        train_loss = lam * train_mse + (1 - lam) * train_ce
        epoch = self.epoch + 1
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"non-finite training loss at epoch {epoch} of {spec.short()} "
                f"(mse={train_mse}, ce={train_ce}); lower the learning rates"
            )
        test = self.evaluate()
        extra: dict[str, float] = {}
        if masked:
            gen = torch.Generator(device=self.device).manual_seed(MASK_EVAL_SEED)
            extra = {f"masked_{k}": v for k, v in self.evaluate(masked=True, generator=gen).items()}
        if not math.isfinite(test["test_loss"]):
            raise NonFiniteLossError(f"non-finite test loss at epoch {epoch} of {spec.short()}: {test}")
        metrics = EpochMetrics(
            epoch=epoch, train_loss=train_loss, train_mse=train_mse, train_ce=train_ce,
            train_seconds=train_seconds, **test, **extra,
        )
        self.epoch = epoch
        self.history.append(metrics)
        return metrics

    @torch.inference_mode()
    def evaluate(self, *, masked: bool = False, generator: torch.Generator | None = None) -> dict[str, float]:
        """Test loss / MSE / CE / accuracy on the full test set in eval mode."""
        model, data, lam = self.model, self.data, self.spec.lam
        was_training = model.training
        model.eval()
        n = data.x_test.shape[0]
        sum_mse = torch.zeros((), device=self.device, dtype=torch.float64)
        sum_ce = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        for start in range(0, n, EVAL_BATCH):
            x = data.x_test[start : start + EVAL_BATCH]
            y = data.y_test[start : start + EVAL_BATCH]
            mse, ce, logits = model.losses(x, y, lam, masked=masked, generator=generator)
            b = x.shape[0]
            sum_mse += mse.double() * b
            sum_ce += ce.double() * b
            correct += (logits.argmax(1) == y).sum()
        model.train(was_training)
        mse, ce = float(sum_mse) / n, float(sum_ce) / n
        return {
            "test_loss": lam * mse + (1 - lam) * ce,
            "test_mse": mse,
            "test_ce": ce,
            "test_acc": int(correct) / n,
        }

    # ------------------------------------------------------------------ best
    @property
    def best_epoch(self) -> int | None:
        """Epoch with the lowest weighted test loss so far."""
        return best_epoch(self.history)

    @property
    def is_best(self) -> bool:
        """True when the epoch just run is the best so far (time to save a ``best`` checkpoint)."""
        return bool(self.history) and self.best_epoch == self.history[-1].epoch

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: spec, epoch, model, optimizers, RNG states, history."""
        rng = {
            "torch": torch.get_rng_state(),
            "batch": self.batch_gen.get_state(),
            "aug": self.aug_gen.get_state(),
        }
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": STATE_FORMAT,
            "spec": self.spec.to_dict(),
            "spec_id": self.spec.spec_id,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizers": {k: (o.state_dict() if o is not None else None) for k, o in self.optimizers.items()},
            "rng": rng,
            "history": [m.to_dict() for m in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` output; the spec must be the same trial."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"checkpoint format must be {STATE_FORMAT}, got {state.get('format')!r}")
        if state.get("spec_id") != self.spec.spec_id:
            raise ValueError(
                f"checkpoint belongs to trial {str(state.get('spec_id'))[:12]}, not {self.spec.spec_id[:12]}"
            )
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            if o is not None:
                o.load_state_dict(state["optimizers"][k])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        self.batch_gen.set_state(rng["batch"].cpu())
        self.aug_gen.set_state(rng["aug"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        self.epoch = int(state["epoch"])
        self.history = [EpochMetrics.from_dict(m) for m in state["history"]]

    def model_state(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the model weights (for ``best`` checkpoints)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns: the spec, every epoch's metrics, the best epoch and its weights."""

    spec: TrialSpec
    epochs: list[EpochMetrics]
    best_epoch: int | None
    best_state: dict[str, torch.Tensor] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``run-trial --json``."""
        return {
            "spec_id": self.spec.spec_id,
            "spec": self.spec.to_dict(),
            "epochs": [m.to_dict() for m in self.epochs],
            "best_epoch": self.best_epoch,
        }


EpochCallback = Callable[[EpochMetrics, Trainer], None]


def train(
    spec: TrialSpec,
    *,
    device: str | torch.device | None = None,
    data_dir: str | None = None,
    resume: dict[str, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    until_epoch: int | None = None,
    keep_best: bool = False,
    threads: int | None = None,
) -> TrainResult:
    """Train ``spec`` to ``until_epoch`` (default ``spec.epochs``), calling ``on_epoch(metrics, trainer)``.

    ``resume`` is a ``Trainer.state_dict()``; ``keep_best`` keeps a CPU copy of the best weights
    (returned as ``best_state``; on resume the best is only known from the resumed epochs on).
    """
    trainer = Trainer(spec, device=device, data_dir=data_dir, threads=threads)
    if resume is not None:
        trainer.load_state_dict(resume)
    stop = spec.epochs if until_epoch is None else min(until_epoch, spec.epochs)
    best_state = None
    while trainer.epoch < stop:
        metrics = trainer.run_epoch()
        if keep_best and trainer.is_best:
            best_state = trainer.model_state()
        if on_epoch is not None:
            on_epoch(metrics, trainer)
    return TrainResult(spec, list(trainer.history), trainer.best_epoch, best_state)
