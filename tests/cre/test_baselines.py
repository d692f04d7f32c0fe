"""PCA / random-projection baselines (paper Figure 7): frozen linear z, trainable FC heads."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from cre import TrialSpec, Trainer, build_model, count_trainable, load_dataset
from cre.checkpoint import best_payload, load_model, to_bytes
from cre.models.baselines import ProjectionCRE, pca_fit
from cre.models.fc import fc_cre

KINDS = ("pca", "rp")
SIZES = ("small", "medium", "large")


def spec(model: str = "pca-small", n: int = 8, **kw) -> TrialSpec:
    return TrialSpec(model=model, dataset="synthetic", latent_dim=n, **kw)


@pytest.fixture(scope="module")
def data():  # noqa: ANN201
    return load_dataset("synthetic", shape=(1, 28, 28))


def prepared(s: TrialSpec, data) -> ProjectionCRE:  # noqa: ANN001
    m = build_model(s)
    m.prepare(data)
    return m


# ----------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", [3, 16])
def test_frozen_encoder_and_fc_heads_of_the_fc_size(kind: str, size: str, n: int, data) -> None:  # noqa: ANN001
    m = prepared(spec(f"{kind}-{size}", n), data)
    fc = fc_cre(size, n)
    assert count_trainable(m.encoder) == 0 and list(m.encoder.parameters()) == []
    assert count_trainable(m.decoder) == count_trainable(fc.decoder)
    assert count_trainable(m.classifier) == count_trainable(fc.classifier)
    x = data.x_train[:5]
    z = m.encoder(x)
    recon, logits = m(x)
    assert tuple(z.shape) == (5, n) and recon.shape == x.shape and tuple(logits.shape) == (5, 10)
    assert recon.abs().max() <= 1 and torch.isfinite(logits).all()  # decoder ends in tanh
    assert {"encoder.projection", "encoder.mean", "encoder.fitted"} <= set(m.state_dict())


def test_every_trainable_parameter_receives_a_gradient_and_the_encoder_none(data) -> None:  # noqa: ANN001
    for name in ("pca-medium", "rp-large"):
        m = prepared(spec(name, 8), data)
        mse, ce, _ = m.losses(data.x_train[:8], data.y_train[:8], 0.5)
        (mse + ce).backward()
        for pname, p in m.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, (name, pname)


def test_unfitted_pca_refuses_to_encode() -> None:
    m = build_model(spec("pca-small", 4))
    with pytest.raises(RuntimeError, match="not fitted"):
        m.encoder(torch.zeros(1, 1, 28, 28))


# ----------------------------------------------------------------------------- PCA
@pytest.fixture(scope="module")
def svd(data):  # noqa: ANN001, ANN201
    """Centred training matrix and its right singular vectors (numpy, float64): the direct rank-n PCA."""
    X = data.x_train.flatten(1).double().numpy()
    Xc = X - X.mean(0)
    _, _, vt = np.linalg.svd(Xc, full_matrices=False)
    return Xc, vt


def _train_recon_error(m: ProjectionCRE, data) -> float:  # noqa: ANN001
    flat = data.x_train.flatten(1)
    with torch.no_grad():
        ours = m.encoder.reconstruct(m.encoder(data.x_train))  # the frozen projection and back
    return float(((ours.double() - flat.double()) ** 2).mean())


@pytest.mark.parametrize("n", [1, 3, 16, 70])
def test_pca_reconstruction_error_equals_a_rank_n_pca(n: int, data, svd) -> None:  # noqa: ANN001
    Xc, vt = svd
    m = prepared(spec("pca-small", n), data)
    err_direct = float(((Xc @ vt[:n].T @ vt[:n] - Xc) ** 2).mean())
    assert _train_recon_error(m, data) == pytest.approx(err_direct, rel=1e-4)
    V = m.encoder.projection.double().numpy()
    np.testing.assert_allclose(V.T @ V, vt[:n].T @ vt[:n], atol=1e-4)  # the same subspace


def test_pca_matches_scikit_learn(data) -> None:  # noqa: ANN001
    n = 16
    m = prepared(spec("pca-small", n), data)
    X = data.x_train.flatten(1).double().numpy()
    sk = PCA(n_components=n, svd_solver="full").fit(X)
    err_sk = float(((sk.inverse_transform(sk.transform(X)) - X) ** 2).mean())
    assert _train_recon_error(m, data) == pytest.approx(err_sk, rel=1e-4)
    np.testing.assert_allclose(np.abs(m.encoder.projection.double().numpy() @ sk.components_.T), np.eye(n), atol=1e-3)
    np.testing.assert_allclose(m.encoder.mean.numpy(), sk.mean_, atol=1e-6)
    with torch.no_grad():  # z is the raw projection (sklearn's transform), up to each component's sign
        z = m.encoder(data.x_train).double().numpy()
    np.testing.assert_allclose(np.abs(z), np.abs(sk.transform(X)), atol=1e-3)


def test_pca_is_fitted_on_the_training_images_only(data) -> None:  # noqa: ANN001
    m = prepared(spec("pca-small", 4), data)
    torch.testing.assert_close(m.encoder.mean, data.x_train.flatten(1).mean(0))
    assert not torch.allclose(m.encoder.mean, data.x_test.flatten(1).mean(0))


def test_pca_fit_is_cached_and_prefixes_agree(data) -> None:  # noqa: ANN001
    assert pca_fit(data.x_train) is pca_fit(data.x_train)
    small, large = prepared(spec("pca-small", 4), data), prepared(spec("pca-large", 16), data)
    torch.testing.assert_close(large.encoder.projection[:4], small.encoder.projection)


# ----------------------------------------------------------------------------- RP
def test_random_projection_is_fixed_by_the_seed(data) -> None:  # noqa: ANN001
    torch.manual_seed(1)
    a = build_model(spec("rp-small", 16, seed=3)).encoder.projection
    torch.manual_seed(2)  # the global RNG plays no part
    b = build_model(spec("rp-large", 16, seed=3)).encoder.projection
    c = build_model(spec("rp-small", 16, seed=4)).encoder.projection
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert abs(float(a.std()) - 16**-0.5) < 0.01 and abs(float(a.mean())) < 0.01  # N(0, 1/n)
    m = build_model(spec("rp-small", 16, seed=3))
    x = data.x_train[:4]
    torch.testing.assert_close(m.encoder(x), x.flatten(1) @ a.T)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(model="pca-small", latent_dim=8, mask_ratio=0.66, mask_variant="v1"), "mask_ratio must be 0 for pca-small"),
        (dict(model="rp-small", latent_dim=8, drop_path=0.1), "drop_path must be 0 for rp-small"),
        (dict(model="pca-medium", latent_dim=785), "latent_dim must be <= 784"),
        (dict(model="rp-small", latent_dim=None), "latent_dim is required"),
        (dict(model="pca-small", dataset="cifar10", latent_dim=8), "takes 1x28x28 images"),
    ],
)
def test_validation_errors(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrialSpec(**{"dataset": "synthetic", **fields})


# ----------------------------------------------------------------------------- training
def _metrics(history) -> list[dict]:  # noqa: ANN001
    return [{k: v for k, v in m.to_dict().items() if k != "train_seconds"} for m in history]


@pytest.mark.parametrize("name", ["pca-medium", "rp-small"])
def test_trainer_leaves_the_encoder_frozen_whatever_lam(name: str) -> None:
    finals = []
    for lam in (0.0, 1.0):
        t = Trainer(spec(name, 8, lam=lam, epochs=1, batch_size=256), device="cpu")
        assert t.optimizers["encoder"] is None
        before = {k: v.clone() for k, v in t.model.encoder.state_dict().items()}
        t.run_epoch()
        for k, v in t.model.encoder.state_dict().items():
            assert torch.equal(v, before[k]), k
        finals.append(before)
    for k in finals[0]:
        assert torch.equal(finals[0][k], finals[1][k])


def test_pca_training_is_deterministic_and_resumes_exactly() -> None:
    s = spec("pca-medium", 8, lam=0.5, epochs=3, batch_size=256)
    straight = Trainer(s, device="cpu")
    for _ in range(3):
        straight.run_epoch()
    first = Trainer(s, device="cpu")
    first.run_epoch()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    resumed = Trainer(s, device="cpu")
    resumed.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    while resumed.epoch < 3:
        resumed.run_epoch()
    assert _metrics(resumed.history) == _metrics(straight.history)
    assert straight.best_epoch == resumed.best_epoch


def test_best_checkpoint_carries_the_projection() -> None:
    t = Trainer(spec("pca-small", 8, epochs=1, batch_size=256), device="cpu")
    t.run_epoch()
    model, s, metrics = load_model(to_bytes(best_payload(t)))  # built fresh, never prepared
    x = t.data.x_test[:4]
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x), t.model.encoder(x))
        t.model.eval()
        torch.testing.assert_close(model(x)[1], t.model(x)[1])
    assert metrics.epoch == 1 and s == t.spec
