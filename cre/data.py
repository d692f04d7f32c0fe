"""Datasets held as one normalised tensor on the training device.

Images are scaled to [0, 1] and normalised with mean 0.5 / std 0.5, so they live
in [-1, 1] (the decoder ends in tanh; MSE is measured in that space). Batches are
index slices of a permutation; augmentation (CIFAR's random rotation) runs on
the batch tensor.

Resolution is local first: ``data_dir`` / ``$CRE_DATA_DIR``, the torchvision
cache (``$TORCH_HOME/datasets``, default ``~/.cache/torch/datasets``) and system
folders (Debian's ``dataset-fashion-mnist`` installs the raw IDX ``.gz`` files in
``/usr/share/datasets/fashion-mnist``). Only when nothing is found is the
dataset downloaded (into ``data_dir`` or the cache); offline, one line says
which folders were searched and how to provide the files.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

SYSTEM_DATA_ROOTS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))


class DatasetUnavailable(RuntimeError):
    """A dataset is neither on disk nor downloadable; the message says where it was looked for."""


@dataclass(frozen=True)
class TensorData:
    """A dataset on one device: images (N, C, H, W) float32 in [-1, 1], labels (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 10

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: name, image shape (None: adapts to the model) and a loader."""

    name: str
    shape: tuple[int, int, int] | None
    loader: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    description: str


# ----------------------------------------------------------------------------- IDX (MNIST, FashionMNIST)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=IDX_DTYPES[dtype_code], offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def _find_idx(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in IDX_FILES.items():
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                found[key] = folder / name
                break
        else:
            return None
    return found


def data_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: data_dir, $CRE_DATA_DIR, the torchvision cache."""
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("CRE_DATA_DIR"):
        roots.append(Path(os.environ["CRE_DATA_DIR"]).expanduser())
    roots.append(torchvision_cache())
    out: list[Path] = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def torchvision_cache() -> Path:
    """``$TORCH_HOME/datasets`` (torch's cache folder, default ``~/.cache/torch``)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(home) / "datasets"


def _candidate_folders(roots: list[Path], names: tuple[str, ...]) -> list[Path]:
    """Each root, then root/<name> and root/<name>/raw for each name torchvision or Debian uses."""
    out: list[Path] = []
    for root in roots:
        out.append(root)
        for n in names:
            out += [root / n, root / n / "raw"]
    return out


def _download_root(data_dir: str | os.PathLike | None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("CRE_DATA_DIR"):
        return Path(os.environ["CRE_DATA_DIR"]).expanduser()
    return torchvision_cache()


def _offline() -> bool:
    return os.environ.get("CRE_OFFLINE", "").lower() in ("1", "true", "yes")


_DOWNLOAD_LOCK = threading.Lock()


def _download(name: str, tv_class: str, root: Path, searched: list[Path]) -> None:
    """Download through torchvision, or raise DatasetUnavailable with one clear line."""
    how = (
        f"put the files in one of those folders, pass --data-dir / set CRE_DATA_DIR"
        + (", or `apt-get install dataset-fashion-mnist`" if name == "fashion_mnist" else "")
    )
    where = ", ".join(str(p) for p in searched)
    if _offline():
        raise DatasetUnavailable(f"dataset {name} not found (CRE_OFFLINE is set) in: {where}; {how}")
    import torchvision.datasets as tvd

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        with _DOWNLOAD_LOCK:
            root.mkdir(parents=True, exist_ok=True)
            getattr(tvd, tv_class)(str(root), train=True, download=True)
            getattr(tvd, tv_class)(str(root), train=False, download=True)
    except Exception as exc:  # noqa: BLE001 - any network/IO failure becomes one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatasetUnavailable(
            f"dataset {name} not found in: {where}; download failed ({first[:120]}); {how}"
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def _load_idx_dataset(name: str, tv_class: str, system_name: str, data_dir=None):  # noqa: ANN001
    roots = data_roots(data_dir)
    system = [r / system_name for r in SYSTEM_DATA_ROOTS]
    folders = _candidate_folders(roots, (tv_class, name, system_name)) + system
    for folder in folders:
        files = _find_idx(folder)
        if files:
            arrays = {k: read_idx(p) for k, p in files.items()}
            return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    searched = roots + system
    root = _download_root(data_dir)
    _download(name, tv_class, root, searched)
    files = _find_idx(root / tv_class / "raw")
    if not files:  # pragma: no cover - torchvision changed its layout
        raise DatasetUnavailable(f"dataset {name}: downloaded, but no IDX files in {root / tv_class / 'raw'}")
    arrays = {k: read_idx(p) for k, p in files.items()}
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def load_mnist(data_dir=None, shape=None):  # noqa: ANN001
    return _load_idx_dataset("mnist", "MNIST", "mnist", data_dir)


def load_fashion_mnist(data_dir=None, shape=None):  # noqa: ANN001
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", "fashion-mnist", data_dir)


# ----------------------------------------------------------------------------- CIFAR-10
def _read_cifar_folder(folder: Path):  # noqa: ANN202
    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        with open(folder / name, "rb") as fh:
            d = pickle.load(fh, encoding="latin1")
        return np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d["labels"])

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = batch("test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test, y_test


def load_cifar10(data_dir=None, shape=None):  # noqa: ANN001
    roots = data_roots(data_dir)
    system = [r / "cifar10" for r in SYSTEM_DATA_ROOTS] + [r / "cifar-10" for r in SYSTEM_DATA_ROOTS]
    for base in roots + system:
        for folder in (base, base / "cifar-10-batches-py"):
            if (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file():
                return _read_cifar_folder(folder)
    root = _download_root(data_dir)
    _download("cifar10", "CIFAR10", root, roots + system)
    return _read_cifar_folder(root / "cifar-10-batches-py")


# ----------------------------------------------------------------------------- digits, synthetic
DIGITS_TEST_FRACTION = 0.2


def load_digits(data_dir=None, shape=None):  # noqa: ANN001
    """scikit-learn's bundled 8x8 digits (1,797 images) resized to 28x28; fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    images = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    big = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).clamp_(0, 1)
    x = (big.numpy() * 255.0).round().astype(np.uint8)
    idx = np.arange(len(x))
    tr, te = train_test_split(idx, test_size=DIGITS_TEST_FRACTION, random_state=0, stratify=d.target)
    tr.sort()
    te.sort()
    return x[tr], d.target[tr], x[te], d.target[te]


SYNTHETIC_SIZES = (1024, 256)


def load_synthetic(data_dir=None, shape=(1, 28, 28)):  # noqa: ANN001
    """Small class-structured images for tests: a smooth prototype per class plus noise (fixed seed).

    Adapts to the model's image shape; 1,024 training and 256 test images, 10 classes.
    """
    shape = tuple(shape or (1, 28, 28))
    g = torch.Generator().manual_seed(12345)
    coarse = torch.rand((10, shape[0], 7, 7), generator=g)
    protos = F.interpolate(coarse, size=shape[1:], mode="bilinear", align_corners=False)  # (10, C, H, W)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = torch.arange(n) % 10
        y = y[torch.randperm(n, generator=g)]
        x = protos[y] + 0.15 * torch.randn((n, *shape), generator=g)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), y.numpy()

    x_train, y_train = make(SYNTHETIC_SIZES[0])
    x_test, y_test = make(SYNTHETIC_SIZES[1])
    return x_train, y_train, x_test, y_test


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (1, 28, 28), load_mnist, "MNIST handwritten digits (torchvision)"),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (1, 28, 28), load_fashion_mnist, "FashionMNIST (torchvision, or Debian dataset-fashion-mnist)"
    ),
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), load_cifar10, "CIFAR-10 (torchvision)"),
    "digits": DatasetInfo("digits", (1, 28, 28), load_digits, "scikit-learn's bundled digits, 28x28, offline"),
    "synthetic": DatasetInfo("synthetic", None, load_synthetic, "generated class-structured images (tests)"),
}


# ----------------------------------------------------------------------------- tensors on the device
def to_tensor_images(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) in [0, 255] -> float32 (N, C, H, W) normalised to [-1, 1]."""
    t = torch.tensor(np.ascontiguousarray(x))  # a copy: IDX arrays are read-only views of the file
    if t.dim() == 3:
        t = t.unsqueeze(1)
    return t.to(torch.float32).div_(255.0).sub_(0.5).div_(0.5)


_CACHE: dict[tuple, TensorData] = {}
_CACHE_LOCK = threading.Lock()


def load_dataset(
    name: str,
    *,
    device: str | torch.device = "cpu",
    data_dir: str | os.PathLike | None = None,
    shape: tuple[int, int, int] | None = None,
) -> TensorData:
    """The dataset as normalised tensors on ``device``; cached per process (read-only, shared)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(sorted(DATASETS))}, got {name!r}")
    info = DATASETS[name]
    shape = tuple(shape) if (shape and info.shape is None) else info.shape
    key = (name, str(torch.device(device)), str(data_dir or os.environ.get("CRE_DATA_DIR", "")), shape)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    x_train, y_train, x_test, y_test = info.loader(data_dir=data_dir, shape=shape)
    data = TensorData(
        to_tensor_images(x_train).to(device),
        torch.tensor(np.asarray(y_train), dtype=torch.int64).to(device),
        to_tensor_images(x_test).to(device),
        torch.tensor(np.asarray(y_test), dtype=torch.int64).to(device),
    )
    with _CACHE_LOCK:
        _CACHE[key] = data
    return data


def clear_cache() -> None:
    """Forget every cached dataset (frees device memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


# ----------------------------------------------------------------------------- augmentation
def random_rotation(x: torch.Tensor, degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate each image of a normalised batch by a uniform angle in [-degrees, degrees].

    Like torchvision's RandomRotation (nearest interpolation, black fill): areas
    rotated in from outside the image are black, i.e. -1 in the normalised space.
    """
    if degrees <= 0:
        return x
    n = x.shape[0]
    angles = (torch.rand(n, generator=generator, device="cpu") * 2 - 1) * math.radians(degrees)
    angles = angles.to(x.device, x.dtype)
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Shift to [0, 2] so the zero padding of grid_sample is black (-1 after shifting back).
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1
