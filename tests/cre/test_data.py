import gzip
import struct

import numpy as np
import pytest
import torch

from cre import DATASETS, DatasetUnavailable, load_dataset
from cre.data import clear_cache, load_digits, read_idx


def write_idx(path, array, gz):
    codes = {np.uint8: 0x08}
    header = struct.pack(">HBB", 0, codes[array.dtype.type], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def make_idx_folder(folder, n_train=20, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (n_train,), dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, gz)
    return arrays


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("CRE_DATA_DIR", raising=False)
    monkeypatch.setattr("cre.data.SYSTEM_DATA_ROOTS", (tmp_path / "system",))
    clear_cache()
    yield
    clear_cache()


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = write_idx(tmp_path / "x-idx3-ubyte", arr, gz)
    np.testing.assert_array_equal(read_idx(path), arr)


@pytest.mark.parametrize(
    "layout",
    ["{root}", "{root}/FashionMNIST/raw", "{root}/fashion_mnist", "{root}/fashion-mnist"],
)
def test_resolves_idx_from_data_dir_layouts(tmp_path, layout):
    root = tmp_path / "data"
    arrays = make_idx_folder(__import__("pathlib").Path(layout.format(root=root)))
    d = load_dataset("fashion_mnist", data_dir=root)
    assert d.x_train.shape == (20, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().div(255).sub(0.5).div(0.5)
    torch.testing.assert_close(d.x_train[:, 0], expected)
    assert d.x_train.min() >= -1 and d.x_train.max() <= 1
    np.testing.assert_array_equal(d.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_env_var_and_plain_files(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "env" / "MNIST" / "raw", gz=False, n_train=7)
    monkeypatch.setenv("CRE_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset("mnist").x_train.shape[0] == 7


def test_data_dir_wins_over_system_folder(tmp_path):
    make_idx_folder(tmp_path / "system" / "fashion-mnist", n_train=11)
    assert load_dataset("fashion_mnist").x_train.shape[0] == 11  # the Debian package's folder
    clear_cache()
    make_idx_folder(tmp_path / "mine", n_train=5)
    assert load_dataset("fashion_mnist", data_dir=tmp_path / "mine").x_train.shape[0] == 5


def test_offline_missing_dataset_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CRE_OFFLINE", "1")
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("fashion_mnist", data_dir=tmp_path / "empty")
    msg = str(info.value)
    assert "\n" not in msg
    assert "fashion_mnist" in msg and str(tmp_path / "empty") in msg and "torch-home" in msg
    assert "--data-dir" in msg and "dataset-fashion-mnist" in msg


def test_download_failure_without_network_is_one_clear_line(tmp_path, monkeypatch):
    """No CRE_OFFLINE: the download is tried; on this offline machine it fails with one line."""
    import socket

    def no_network(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("mnist", data_dir=tmp_path / "d")
    assert "\n" not in str(info.value) and "download failed" in str(info.value)


def test_digits_is_fixed_offline_28x28():
    x_tr, y_tr, x_te, y_te = load_digits()
    assert x_tr.shape[1:] == (1, 28, 28) and x_tr.dtype == np.uint8
    assert len(x_tr) + len(x_te) == 1797 and len(x_te) == 360
    assert set(np.unique(y_te)) == set(range(10))
    x_tr2, *_ = load_digits()
    np.testing.assert_array_equal(x_tr, x_tr2)
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 1, 28, 28) and -1 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1


def test_synthetic_adapts_shape_and_is_deterministic():
    a = load_dataset("synthetic", shape=(3, 32, 32))
    assert a.x_train.shape[1:] == (3, 32, 32)
    clear_cache()
    b = load_dataset("synthetic", shape=(3, 32, 32))
    assert torch.equal(a.x_train, b.x_train)
    assert DATASETS["synthetic"].shape is None


def test_cache_returns_same_tensors():
    a = load_dataset("synthetic", shape=(1, 28, 28))
    assert load_dataset("synthetic", shape=(1, 28, 28)) is a


def test_debian_fashion_mnist_when_installed():
    """The real files from Debian's dataset-fashion-mnist package, as .ci/run installs them."""
    from pathlib import Path

    folder = Path("/usr/share/datasets/fashion-mnist")
    if not folder.is_dir():
        pytest.fail("dataset-fashion-mnist is not installed (.ci/run installs it)")
    import cre.data

    cre.data.SYSTEM_DATA_ROOTS = (Path("/usr/share/datasets"),)
    d = load_dataset("fashion_mnist")
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.y_train.bincount().tolist() == [6000] * 10
