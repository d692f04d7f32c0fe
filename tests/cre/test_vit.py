"""ViT CREs (vit-small, vit-large): architecture facts, MAE masking (v1/v2), training through the Trainer."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cre import TensorData, TrialSpec, Trainer, build_model, count_trainable, get_model_info, load_dataset
from cre.models.vit import ViTCRE, ViTEncoder, sincos_2d

# ARCHITECTURES.md, "Acceptance figures": (variant, n) -> (encoder, decoder, classifier, z shape at batch 2)
TABLE = {
    ("vit-small", 4): (456, 521, 50, (2, 17, 4)),
    ("vit-small", 16): (4_128, 4_433, 170, (2, 17, 16)),
    ("vit-small", 32): (14_400, 15_473, 330, (2, 17, 32)),
    ("vit-small", 256): (803_328, 868_913, 2_570, (2, 17, 256)),
    ("vit-small", 2048): (50_466_816, 54_661_169, 20_490, (2, 17, 2048)),
    ("vit-large", 32): (89_440, 90_476, 330, (2, 257, 32)),
}


def spec(model: str = "vit-small", n: int = 8, **kw) -> TrialSpec:
    return TrialSpec(model=model, dataset="synthetic", latent_dim=n, **kw)


def images(model: str, batch: int = 2, seed: int = 0) -> torch.Tensor:
    shape = get_model_info(model).input_shape
    return torch.rand((batch, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ----------------------------------------------------------------------------- architecture
@pytest.mark.parametrize(("model", "n"), list(TABLE))
def test_trainable_parameters_per_module_match_the_table(model: str, n: int) -> None:
    enc, dec, cls, z_shape = TABLE[(model, n)]
    m = build_model(spec(model, n))
    assert (count_trainable(m.encoder), count_trainable(m.decoder), count_trainable(m.classifier)) == (enc, dec, cls)
    if n <= 256:  # the 2048-wide model is only counted (a forward pass would be slow and adds nothing)
        with torch.no_grad():
            assert tuple(m.encoder(images(model)).shape) == z_shape


@pytest.mark.parametrize(("model", "patches"), [("vit-small", (16, 49)), ("vit-large", (256, 12))])
def test_output_shapes_and_finite(model: str, patches: tuple[int, int]) -> None:
    torch.manual_seed(0)
    m = build_model(spec(model, 8)).eval()
    x = images(model, 3)
    with torch.no_grad():
        z = m.encoder(x)
        recon, logits = m(x)
        pred = m.decoder(z)
    assert tuple(pred.shape) == (3, *patches)
    assert recon.shape == x.shape and tuple(logits.shape) == (3, 10)
    assert all(torch.isfinite(t).all() for t in (z, recon, logits, pred))
    torch.testing.assert_close(recon, m.unpatchify(pred))


def test_position_embedding_is_fixed_and_equals_mae() -> None:
    """Same values as MAE's numpy get_2d_sincos_pos_embed (cls_token=True); a buffer outside the state dict."""

    def mae_1d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    def mae_2d(d: int, g: int) -> np.ndarray:
        grid = np.stack(np.meshgrid(np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32)), axis=0)
        emb = np.concatenate([mae_1d(d // 2, grid[0]), mae_1d(d // 2, grid[1])], axis=1)
        return np.concatenate([np.zeros([1, d]), emb], axis=0)

    for d, g in ((4, 4), (32, 4), (32, 16)):
        np.testing.assert_allclose(sincos_2d(d, g).numpy(), mae_2d(d, g), rtol=0, atol=1e-6)
    m = build_model(spec("vit-small", 16))
    for part in (m.encoder, m.decoder):
        assert not any("pos_embed" in name for name, _ in part.named_parameters())
        torch.testing.assert_close(part.pos_embed[0], sincos_2d(16, 4))
    assert not any("pos_embed" in k for k in m.state_dict())


def test_patchify_follows_the_patch_embedding_order() -> None:
    m = build_model(spec("vit-large", 8))
    x = images("vit-large", 2)
    p = m.patchify(x)  # (2, 256, 12)
    # patch (row 3, column 5) = pixels [6:8, 10:12] of every channel, ordered (p, q, c)
    torch.testing.assert_close(p[:, 3 * 16 + 5], x[:, :, 6:8, 10:12].permute(0, 2, 3, 1).reshape(2, 12))
    torch.testing.assert_close(m.unpatchify(p), x)


def test_classifier_is_mean_of_patch_tokens_through_non_affine_batchnorm() -> None:
    m = build_model(spec("vit-small", 8)).eval()
    bn = m.classifier.norm
    assert not bn.affine and bn.eps == 1e-6
    z = torch.randn(3, 17, 8)
    z2 = z.clone()
    z2[:, 0] += 100.0  # the class token does not reach the classifier
    torch.testing.assert_close(m.classifier(z), m.classifier(z2))
    expected = m.classifier.head((z[:, 1:].mean(1) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps))
    torch.testing.assert_close(m.classifier(z), expected)


def test_drop_path_only_in_encoder_blocks() -> None:
    m = build_model(spec("vit-large", 8, drop_path=0.2))
    assert all(float(b.drop_path1.drop_prob) == 0.2 for b in m.encoder.blocks)
    assert all(isinstance(b.drop_path1, torch.nn.Identity) for b in m.decoder.blocks)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("model", ["vit-small", "vit-large"])
def test_every_trainable_parameter_receives_a_gradient(model: str, masked: bool) -> None:
    torch.manual_seed(0)
    m = build_model(spec(model, 8, mask_ratio=0.66, mask_variant="v1", drop_path=0.1)).train()
    x, y = images(model, 4), torch.tensor([0, 1, 2, 3])
    mse, ce, _ = m.losses(x, y, 0.5, masked=masked)
    (mse + ce).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name == "decoder.mask_token" and not masked:
            # Unmasked, the mask token fills no position: its gradient is exactly zero.
            assert torch.count_nonzero(p.grad) == 0
        else:
            assert torch.count_nonzero(p.grad) > 0, name


def test_lam_routes_encoder_gradients() -> None:
    """lam = 0: the encoder sees only dCE; lam = 1: only dMSE. Decoder / classifier always their own loss."""
    x, y = images("vit-small", 4), torch.tensor([0, 1, 2, 3])
    for lam, alone in ((0.0, "ce"), (1.0, "mse")):
        grads = []
        for which in ("routed", alone):
            torch.manual_seed(0)
            m = build_model(spec("vit-small", 8, mask_ratio=0.66, mask_variant="v1"))
            out = m.losses(x, y, lam if which == "routed" else 0.5, masked=True, generator=torch.Generator().manual_seed(1))
            (out.mse + out.ce if which == "routed" else getattr(out, alone)).backward()
            grads.append({k: p.grad.clone() for k, p in m.encoder.named_parameters()})
        for k in grads[0]:  # the comparison ran at lam = 0.5, which halves either loss's encoder gradient
            torch.testing.assert_close(grads[0][k], 2 * grads[1][k], msg=k)


# ----------------------------------------------------------------------------- masking
@pytest.mark.parametrize(("model", "L", "keep"), [("vit-small", 16, 5), ("vit-large", 256, 87)])
def test_masking_keeps_int_L_times_one_minus_ratio(model: str, L: int, keep: int) -> None:
    m = build_model(spec(model, 8, mask_ratio=0.66, mask_variant="v1")).eval()
    x = images(model, 3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z, mask, ids_restore = m.encoder.forward_encoder(x, m.mask_ratio, g)
        pred = m.decoder(z, ids_restore)
    assert ViTEncoder.keep_count(L, 0.66) == keep
    assert tuple(z.shape) == (3, 1 + keep, 8)  # class token + kept patches
    assert tuple(mask.shape) == (3, L) and mask.sum(1).tolist() == [L - keep] * 3
    assert tuple(pred.shape) == (3, L, m.patchify(x).shape[-1])  # every patch comes back
    assert sorted(ids_restore[0].tolist()) == list(range(L))
    # Samples are masked independently.
    assert not torch.equal(mask[0], mask[1]) or not torch.equal(mask[1], mask[2])


def test_masked_kept_tokens_are_the_unmasked_positions() -> None:
    """With no blocks in the way, the kept tokens are the patch embeddings at mask == 0, in shuffle order."""
    m = build_model(spec("vit-small", 8, mask_ratio=0.66, mask_variant="v1"))
    x = images("vit-small", 2)
    emb = m.encoder.patch_embed(x) + m.encoder.pos_embed[:, 1:]  # (2, 16, 8)
    kept, mask, ids_restore = m.encoder.random_masking(emb, 0.66, torch.Generator().manual_seed(3))
    for i in range(2):
        ids_keep = torch.argsort(ids_restore[i])[:5]
        torch.testing.assert_close(kept[i], emb[i, ids_keep])
        assert mask[i, ids_keep].sum() == 0


def test_v1_loss_is_the_mean_over_masked_patches_and_ignores_the_rest() -> None:
    torch.manual_seed(0)
    m = build_model(spec("vit-small", 8, mask_ratio=0.66, mask_variant="v1")).eval()
    x, y = images("vit-small", 4), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        got = m.losses(x, y, 1.0, masked=True, generator=torch.Generator().manual_seed(7)).mse
        z, mask, ids_restore = m.encoder.forward_encoder(x, 0.66, torch.Generator().manual_seed(7))
        pred = m.decoder(z, ids_restore)  # (4, 16, 49)
    target = m.patchify(x)
    per_patch = ((pred - target) ** 2).mean(-1)  # (4, 16)
    manual = per_patch[mask.bool()].mean()
    torch.testing.assert_close(got, manual)
    # Changing the prediction on unmasked patches does not change the v1 loss ...
    perturbed = pred + 5.0 * (1 - mask).unsqueeze(-1)
    torch.testing.assert_close(m.forward_loss(x, perturbed, mask), manual)
    # ... while changing it on a masked patch does.
    assert not torch.isclose(m.forward_loss(x, pred + 5.0 * mask.unsqueeze(-1), mask), manual)


def test_v2_loss_is_the_whole_image_mse() -> None:
    torch.manual_seed(0)
    m = build_model(spec("vit-small", 8, mask_ratio=0.66, mask_variant="v2")).eval()
    x, y = images("vit-small", 4), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        got = m.losses(x, y, 1.0, masked=True, generator=torch.Generator().manual_seed(7)).mse
        z, _, ids_restore = m.encoder.forward_encoder(x, 0.66, torch.Generator().manual_seed(7))
        recon = m.unpatchify(m.decoder(z, ids_restore))
    torch.testing.assert_close(got, F.mse_loss(recon, x))


def test_unmasked_losses_match_forward() -> None:
    """masked=False, or a model built without masking, measures the plain image MSE of model(x)."""
    x, y = images("vit-small", 4), torch.tensor([0, 1, 2, 3])
    for s in (spec("vit-small", 8, mask_ratio=0.66, mask_variant="v1"), spec("vit-small", 8)):
        torch.manual_seed(0)
        m = build_model(s).eval()
        with torch.no_grad():
            recon, logits = m(x)
            for masked in (False, True) if not s.mask_ratio else (False,):
                mse, ce, lg = m.losses(x, y, 0.3, masked=masked)
                torch.testing.assert_close(mse, F.mse_loss(recon, x))
                torch.testing.assert_close(lg, logits)
                torch.testing.assert_close(ce, F.cross_entropy(logits, y))


def test_masking_follows_the_generator() -> None:
    m = build_model(spec("vit-small", 8, mask_ratio=0.66, mask_variant="v1")).eval()
    x, y = images("vit-small", 4), torch.tensor([0, 1, 2, 3])
    run = lambda s: m.losses(x, y, 1.0, masked=True, generator=torch.Generator().manual_seed(s)).mse  # noqa: E731
    with torch.no_grad():
        assert torch.equal(run(1), run(1))
        assert not torch.equal(run(1), run(2))


# ----------------------------------------------------------------------------- validation
def test_model_stores_mask_settings_from_the_spec() -> None:
    m = build_model(spec("vit-small", 8, mask_ratio=0.66, mask_variant="v2"))
    assert isinstance(m, ViTCRE) and m.supports_masking
    assert (m.mask_ratio, m.mask_variant) == (0.66, "v2")
    assert (build_model(spec("vit-small", 8)).mask_ratio, build_model(spec("vit-small", 8)).mask_variant) == (0.0, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(model="fc-small", latent_dim=8, mask_ratio=0.66, mask_variant="v1"), "mask_ratio must be 0 for fc-small"),
        (dict(model="cnn-small", mask_ratio=0.5, mask_variant="v1"), "mask_ratio must be 0 for cnn-small"),
        (dict(model="vit-small", latent_dim=8, mask_ratio=0.66, mask_variant="v3"), "mask_variant must be one of v1, v2"),
        (dict(model="vit-small", latent_dim=8, mask_ratio=0.66), "mask_variant must be one of v1, v2"),
        (dict(model="vit-small", latent_dim=6), "latent_dim must be divisible by 4"),
        (dict(model="vit-large", latent_dim=12), "latent_dim must be divisible by 8"),
        (dict(model="vit-small", dataset="cifar10", latent_dim=8), "takes 1x28x28 images"),
        (dict(model="vit-small", latent_dim=8, dropout=0.3), "dropout must be 0 for vit-small"),
    ],
)
def test_validation_errors(fields: dict, message: str) -> None:
    fields = {"dataset": "synthetic", **fields}
    with pytest.raises(ValueError, match=message):
        TrialSpec(**fields)


def test_mask_ratio_that_keeps_no_patch_is_refused_by_the_spec() -> None:
    with pytest.raises(ValueError, match=r"mask_ratio must keep at least 1 .* 16 patches of vit-small \(it keeps 0\), got 0.95"):
        TrialSpec(model="vit-small", dataset="synthetic", latent_dim=8, mask_ratio=0.95, mask_variant="v1")
    with pytest.raises(ValueError, match="keeps 0 of 16 patches"):  # the module checks too, for direct use
        ViTCRE(img_size=28, patch=7, in_chans=1, dim=8, depth=1, heads=4, mask_ratio=0.95, mask_variant="v1")


# ----------------------------------------------------------------------------- training
def _metrics(history) -> list[dict]:  # noqa: ANN001
    return [{k: v for k, v in m.to_dict().items() if k != "train_seconds"} for m in history]


def test_trainer_runs_masked_vit_with_masked_test_metrics() -> None:
    s = spec("vit-small", 8, lam=1.0, epochs=2, batch_size=256, mask_ratio=0.66, mask_variant="v1")
    t = Trainer(s, device="cpu")
    for _ in range(2):
        m = t.run_epoch()
        assert m.masked_test_mse is not None and m.masked_test_acc is not None
        assert np.isfinite([m.train_loss, m.test_loss, m.masked_test_loss]).all()
    assert t.best_epoch in (1, 2)
    plain = Trainer(spec("vit-small", 8, epochs=1, batch_size=256), device="cpu").run_epoch()
    assert plain.masked_test_mse is None


def test_masked_vit_training_is_deterministic_and_resumes_exactly() -> None:
    s = spec("vit-small", 8, lam=0.9, epochs=3, batch_size=256, mask_ratio=0.66, mask_variant="v2", drop_path=0.1)
    straight = Trainer(s, device="cpu")
    for _ in range(3):
        straight.run_epoch()
    again = Trainer(s, device="cpu")
    again.run_epoch()
    buf = io.BytesIO()
    torch.save(again.state_dict(), buf)
    del again
    torch.manual_seed(1234)  # whatever the global RNG did meanwhile, the checkpoint restores it
    resumed = Trainer(s, device="cpu")
    resumed.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    while resumed.epoch < 3:
        resumed.run_epoch()
    assert _metrics(resumed.history) == _metrics(straight.history)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_vit_large_trains_one_epoch() -> None:
    """Through the Trainer with drop-path, masking and rotation, on 64 CIFAR-shaped images (CPU-cheap)."""
    s = TrialSpec(model="vit-large", dataset="synthetic", latent_dim=8, epochs=1, batch_size=32, drop_path=0.2,
                  mask_ratio=0.66, mask_variant="v1", rotation=15)
    full = load_dataset("synthetic", shape=(3, 32, 32))
    data = TensorData(full.x_train[:64], full.y_train[:64], full.x_test[:32], full.y_test[:32])
    m = Trainer(s, device="cpu", data=data).run_epoch()
    assert np.isfinite([m.train_loss, m.test_loss, m.masked_test_loss]).all()
