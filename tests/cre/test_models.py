"""Registry-wide model tests (timm style): every registered variant is checked."""

import pytest
import torch
import torch.nn.functional as F

from cre import TrialSpec, build_model, count_trainable, get_model_info, list_models
from cre.models import route_latent

# Acceptance figures of ARCHITECTURES.md: (model, n) -> (encoder, decoder, classifier, z shape at batch 2).
PARAM_TABLE = {
    ("fc-small", 3): (2_355, 3_136, 40, (2, 3)),
    ("fc-small", 16): (12_560, 13_328, 170, (2, 16)),
    ("fc-small", 512): (401_920, 402_192, 5_130, (2, 512)),
    ("fc-medium", 3): (485_411, 486_192, 178, (2, 3)),
    ("fc-medium", 16): (493_432, 494_200, 334, (2, 16)),
    ("fc-medium", 512): (799_464, 799_736, 6_286, (2, 512)),
    ("fc-large", 3): (1_476_299, 1_477_080, 906, (2, 3)),
    ("fc-large", 16): (1_484_320, 1_485_088, 1_738, (2, 16)),
    ("fc-large", 512): (1_790_352, 1_790_624, 33_482, (2, 512)),
    ("cnn-small", None): (4_896, 4_785, 2_570, (2, 16, 4, 4)),
    ("cnn-large", None): (973_504, 407_619, 372_234, (2, 128, 4, 4)),
}
# Variants whose acceptance rows live in their own test module (ViT, baselines).
PARAM_TABLE_ELSEWHERE = {"vit-small", "vit-large"} | {f"{k}-{s}" for k in ("pca", "rp") for s in ("small", "medium", "large")}


def example_spec(name: str, **kw) -> TrialSpec:
    """A small valid spec for any registered variant, on generated data of its shape."""
    info = get_model_info(name)
    n = None if info.fixed_latent is not None else 8
    if n is not None and info.latent_check is not None and info.latent_check(n):
        n = 16
    return TrialSpec(model=name, dataset="synthetic", latent_dim=n, **kw)


@pytest.mark.parametrize("key", sorted(PARAM_TABLE, key=str))
def test_trainable_parameters_match_table(key):
    name, n = key
    enc, dec, cls, z_shape = PARAM_TABLE[key]
    info = get_model_info(name)
    ds = "cifar10" if info.input_shape[0] == 3 else "mnist"
    model = build_model(TrialSpec(model=name, dataset=ds, latent_dim=n))
    got = tuple(count_trainable(getattr(model, m)) for m in ("encoder", "decoder", "classifier"))
    assert got == (enc, dec, cls)
    model.eval()
    with torch.no_grad():
        z = model.encoder(torch.zeros(2, *info.input_shape))
    assert tuple(z.shape) == z_shape


def test_every_variant_has_an_acceptance_row():
    covered = {m for m, _ in PARAM_TABLE} | PARAM_TABLE_ELSEWHERE
    assert set(list_models()) <= covered, f"add rows for {sorted(set(list_models()) - covered)}"


@pytest.mark.parametrize("name", list_models())
def test_shapes_finite_and_every_parameter_gets_a_gradient(name):
    info = get_model_info(name)
    # masking on where the variant has it: the mask token only receives gradient from masked positions
    mask = dict(mask_ratio=0.66, mask_variant="v2") if "mask_ratio" in info.options else {}
    spec = example_spec(name, lam=0.5, **mask)
    torch.manual_seed(0)
    model = build_model(spec)
    if hasattr(model, "prepare"):
        from cre import load_dataset

        model.prepare(load_dataset("synthetic", shape=info.input_shape))
    x = torch.rand(4, *info.input_shape) * 2 - 1
    y = torch.arange(4) % 10
    recon, logits = model(x)
    assert recon.shape == x.shape and logits.shape == (4, 10)
    assert torch.isfinite(recon).all() and torch.isfinite(logits).all()
    if info.family != "vit":  # FC/CNN decoders end in tanh (paper Tables 1-2); the ViT's in a Linear (Table 3)
        assert recon.min() >= -1 and recon.max() <= 1
    mse, ce, _ = model.losses(x, y, 0.5, masked=bool(mask))
    (mse + ce).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"parameters without gradient: {missing}"


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["fc-medium", "cnn-small"])
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_gradient_routing_equals_manual_reference(name, lam):
    """One routed backward == the three separate gradients of the published scripts."""
    spec = example_spec(name, lam=lam)
    torch.manual_seed(1)
    model = build_model(spec).eval()  # eval: dropout/BN deterministic across the two computations
    x = torch.rand(6, *get_model_info(name).input_shape) * 2 - 1
    y = torch.arange(6) % 10

    mse, ce, _ = model.losses(x, y, lam)
    (mse + ce).backward()
    routed = _grads(model)

    enc = [p for p in model.encoder.parameters()]
    dec = [p for p in model.decoder.parameters()]
    cls = [p for p in model.classifier.parameters()]
    model.zero_grad(set_to_none=True)
    z = model.encoder(x)
    m = F.mse_loss(model.decoder(z), x)
    c = F.cross_entropy(model.classifier(z), y)
    g_enc = torch.autograd.grad(lam * m + (1 - lam) * c, enc, retain_graph=True, allow_unused=True)
    g_dec = torch.autograd.grad(m, dec, retain_graph=True)
    g_cls = torch.autograd.grad(c, cls)
    names = {id(p): n for n, p in model.named_parameters()}
    for params, grads in ((enc, g_enc), (dec, g_dec), (cls, g_cls)):
        for p, g in zip(params, grads):
            got = routed.get(names[id(p)])
            if g is None or not g.abs().sum() > 0:
                assert got is None or not got.abs().sum() > 0
                continue
            torch.testing.assert_close(got, g, rtol=1e-5, atol=1e-7)


def test_route_latent_scales_only_the_backward():
    z = torch.ones(3, requires_grad=True)
    zd, zc = route_latent(z, 0.25)
    assert torch.equal(zd, z) and torch.equal(zc, z)
    (zd.sum() + 10 * zc.sum()).backward()
    torch.testing.assert_close(z.grad, torch.full((3,), 0.25 + 7.5))


def test_registry_unknown_model_names_known():
    with pytest.raises(KeyError, match="fc-small"):
        get_model_info("nope")
