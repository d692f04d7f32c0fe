import math

import pytest
import torch

from cre import EpochMetrics, NonFiniteLossError, Trainer, TrialSpec, best_epoch, train
from cre.checkpoint import best_payload, from_bytes, load_model, to_bytes


def spec(**kw):
    base = dict(model="fc-small", dataset="synthetic", latent_dim=8, lam=0.5, epochs=4, batch_size=128, seed=3)
    base.update(kw)
    return TrialSpec(**base)


def metrics_without_time(history):
    return [{k: v for k, v in m.to_dict().items() if k != "train_seconds"} for m in history]


def test_epoch_metrics_are_complete_and_sane():
    result = train(spec(epochs=3))
    assert [m.epoch for m in result.epochs] == [1, 2, 3]
    for m in result.epochs:
        assert 0 <= m.test_acc <= 1
        assert math.isclose(m.train_loss, 0.5 * m.train_mse + 0.5 * m.train_ce, rel_tol=1e-9)
        assert math.isclose(m.test_loss, 0.5 * m.test_mse + 0.5 * m.test_ce, rel_tol=1e-9)
        assert m.train_seconds > 0 and m.masked_test_mse is None
    assert result.best_epoch == min(result.epochs, key=lambda m: m.test_loss).epoch
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss  # it learns


def test_test_metrics_are_full_test_set_in_eval_mode():
    t = Trainer(spec(model="cnn-small", latent_dim=None, dropout=0.3))
    t.run_epoch()
    t.model.eval()
    with torch.no_grad():
        recon, logits = t.model(t.data.x_test)
    m = t.history[-1]
    assert m.test_mse == pytest.approx(torch.nn.functional.mse_loss(recon, t.data.x_test).item(), rel=1e-5)
    assert m.test_ce == pytest.approx(torch.nn.functional.cross_entropy(logits, t.data.y_test).item(), rel=1e-5)
    assert m.test_acc == pytest.approx((logits.argmax(1) == t.data.y_test).float().mean().item())


def test_train_metrics_are_epoch_means():
    """Per-sample weighted means over uneven batches equal the mean over the epoch's samples."""
    s = spec(batch_size=300, lr_encoder=1e-12, lr_decoder=1e-12, lr_classifier=1e-12)  # weights ~ frozen
    t = Trainer(s)
    t.model.train()
    with torch.no_grad():
        recon, logits = t.model(t.data.x_train)
    expected_mse = torch.nn.functional.mse_loss(recon, t.data.x_train).item()
    m = t.run_epoch()
    assert m.train_mse == pytest.approx(expected_mse, rel=1e-4)


def test_same_spec_same_metrics():
    a = train(spec(model="cnn-small", latent_dim=None, dropout=0.2, epochs=2))
    b = train(spec(model="cnn-small", latent_dim=None, dropout=0.2, epochs=2))
    assert metrics_without_time(a.epochs) == metrics_without_time(b.epochs)
    c = train(spec(model="cnn-small", latent_dim=None, dropout=0.2, epochs=2, seed=4))
    assert metrics_without_time(a.epochs) != metrics_without_time(c.epochs)


@pytest.mark.parametrize("kw", [dict(), dict(model="cnn-small", latent_dim=None, dropout=0.3, rotation=15.0)])
def test_resume_equals_straight_training(kw):
    s = spec(epochs=5, **kw)
    straight = train(s)
    first = Trainer(s)
    for _ in range(2):
        first.run_epoch()
    state = from_bytes(to_bytes(first.state_dict()))  # through serialisation, as on disk
    resumed = train(s, resume=state)
    assert metrics_without_time(resumed.epochs) == metrics_without_time(straight.epochs)
    assert resumed.best_epoch == straight.best_epoch


def test_resume_rejects_another_trial():
    t = Trainer(spec())
    other = Trainer(spec(seed=9))
    with pytest.raises(ValueError, match="belongs to trial"):
        other.load_state_dict(t.state_dict())


def test_non_finite_loss_stops_with_clear_error():
    from cre import TensorData, load_dataset

    d = load_dataset("synthetic", shape=(1, 28, 28))
    x = d.x_train.clone()
    x[5, 0, 3, 3] = float("nan")
    t = Trainer(spec(), data=TensorData(x, d.y_train, d.x_test, d.y_test))
    with pytest.raises(NonFiniteLossError, match="non-finite training loss at epoch 1 of fc-small"):
        t.run_epoch()
    assert t.history == []


def test_epoch_callback_and_best_checkpoint(tmp_path):
    seen = []
    bests = []

    def on_epoch(m, trainer):
        seen.append(m.epoch)
        if trainer.is_best:
            bests.append(best_payload(trainer))

    result = train(spec(epochs=3), on_epoch=on_epoch, keep_best=True)
    assert seen == [1, 2, 3]
    assert bests[-1]["epoch"] == result.best_epoch
    model, s, metrics = load_model(to_bytes(bests[-1]))
    assert s == spec(epochs=3) and metrics.epoch == result.best_epoch
    ref = result.best_state
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ref[k])


def test_best_epoch_lowest_weighted_test_loss_earliest_on_tie():
    mk = lambda e, loss: EpochMetrics(e, 1, 1, 1, loss, 1, 1, 0.5, 0.1)  # noqa: E731
    assert best_epoch([mk(1, 3.0), mk(2, 1.0), mk(3, 1.0), mk(4, 2.0)]) == 2
    assert best_epoch([]) is None


def test_rotation_runs_on_batch_and_keeps_range():
    from cre.data import random_rotation

    x = torch.rand(8, 3, 32, 32) * 2 - 1
    g = torch.Generator().manual_seed(0)
    r = random_rotation(x, 15, g)
    assert r.shape == x.shape and r.min() >= -1 and r.max() <= 1
    assert not torch.equal(r, x)
    assert torch.equal(random_rotation(x, 0), x)
    # the corners rotated in from outside are black (-1 in the normalised space)
    big = random_rotation(torch.ones(64, 1, 28, 28), 15, g)
    assert (big[:, :, 0, 0] == -1).float().mean() > 0.3


def test_batch_bounds_never_leave_a_lone_sample():
    from cre.engine import batch_bounds

    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(9, 4) == [(0, 4), (4, 9)]  # 1 left over joins the previous batch
    assert batch_bounds(1, 4) == [(0, 1)]
    assert batch_bounds(8, 4) == [(0, 4), (4, 8)]


def test_cnn_trains_when_one_sample_is_left_over():
    """1024 synthetic images, batch 341 -> 3 batches + 1 sample: BatchNorm in training mode must not crash."""
    m = Trainer(spec(model="cnn-small", latent_dim=None, batch_size=341, epochs=1)).run_epoch()
    assert math.isfinite(m.train_loss)
