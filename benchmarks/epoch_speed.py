"""Training seconds per epoch: the engine next to the naive loop, measured in one run.

The naive loop is what the published scripts do: a torchvision dataset of PIL
images with ToTensor/Normalize transforms, a DataLoader, and three backward
passes per batch (encoder on lam*MSE + (1-lam)*CE, decoder on MSE, classifier on
CE), each module with its own Adam. The engine holds the dataset as one
normalised tensor, slices batches from a permutation and routes the gradients in
one backward pass.

    python benchmarks/epoch_speed.py --model fc-small --latent-dim 16
    python benchmarks/epoch_speed.py --model fc-medium --latent-dim 16 --epochs 3

Last line: ``epoch speed: model=... naive_s=... engine_s=... ratio=...``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cre import Trainer, TrialSpec, build_model, load_dataset  # noqa: E402


def naive_epoch_seconds(spec: TrialSpec, data_root: str, epochs: int) -> list[float]:
    """The published-style loop on torchvision's FashionMNIST (PIL images + DataLoader)."""
    import torchvision
    import torchvision.transforms as T

    transform = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    dataset = torchvision.datasets.FashionMNIST(data_root, train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=spec.batch_size, shuffle=True)
    torch.manual_seed(spec.seed)
    model = build_model(spec)
    modules = {"encoder": model.encoder, "decoder": model.decoder, "classifier": model.classifier}
    lrs = {"encoder": spec.lr_encoder, "decoder": spec.lr_decoder, "classifier": spec.lr_classifier}
    opts = {k: torch.optim.Adam(m.parameters(), lr=lrs[k]) for k, m in modules.items()}
    params = {k: list(m.parameters()) for k, m in modules.items()}
    lam = spec.lam
    times = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            z = model.encoder(x)
            recon = model.decoder(z)
            logits = model.classifier(z)
            mse = F.mse_loss(recon, x)
            ce = F.cross_entropy(logits, y)
            for o in opts.values():
                o.zero_grad()
            # Three backward passes, one per module and loss.
            g_enc = torch.autograd.grad(lam * mse + (1 - lam) * ce, params["encoder"], retain_graph=True)
            g_dec = torch.autograd.grad(mse, params["decoder"], retain_graph=True)
            g_cls = torch.autograd.grad(ce, params["classifier"])
            for k, grads in (("encoder", g_enc), ("decoder", g_dec), ("classifier", g_cls)):
                for p, g in zip(params[k], grads):
                    p.grad = g
                opts[k].step()
        times.append(time.perf_counter() - t0)
    return times


def prepare_torchvision_root(root: Path) -> str:
    """Link the raw IDX files cre.data finds into the folder layout torchvision expects."""
    import gzip
    import shutil

    from cre.data import IDX_FILES, SYSTEM_DATA_ROOTS, _find_idx, data_roots

    raw = root / "FashionMNIST" / "raw"
    if _find_idx(raw) and all((raw / stem).exists() for stem in IDX_FILES.values()):
        return str(root)
    candidates = [p for r in data_roots() for p in (r, r / "FashionMNIST" / "raw", r / "fashion-mnist")]
    candidates += [r / "fashion-mnist" for r in SYSTEM_DATA_ROOTS]
    src = next((f for f in (_find_idx(c) for c in candidates) if f), None)
    if src is None:
        raise SystemExit("FashionMNIST not found; apt-get install dataset-fashion-mnist or set CRE_DATA_DIR")
    raw.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        path = src[key]
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fin, open(raw / stem, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copy(path, raw / stem)
    return str(root)


def engine_epoch_seconds(spec: TrialSpec, epochs: int, device: str) -> list[float]:
    trainer = Trainer(spec.replace(epochs=epochs), device=device)
    return [trainer.run_epoch().train_seconds for _ in range(epochs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fc-small")
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--lam", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3, help="epochs measured per loop (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache", default="/tmp/cre-bench-data", help="folder for torchvision's copy of the files")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    latent = None if args.model.startswith("cnn") else args.latent_dim
    spec = TrialSpec(model=args.model, dataset="fashion_mnist", latent_dim=latent, lam=args.lam,
                     batch_size=args.batch_size, epochs=args.epochs)
    load_dataset("fashion_mnist", device=args.device)  # load once, outside the timing
    root = prepare_torchvision_root(Path(args.cache))
    engine = engine_epoch_seconds(spec, args.epochs, args.device)
    naive = naive_epoch_seconds(spec, root, args.epochs)
    n_s, e_s = statistics.median(naive), statistics.median(engine)
    print(f"naive epochs (s): {', '.join(f'{t:.2f}' for t in naive)}")
    print(f"engine epochs (s): {', '.join(f'{t:.2f}' for t in engine)}")
    print(f"epoch speed: model={args.model} n={latent} batch={args.batch_size} threads={args.threads} "
          f"naive_s={n_s:.3f} engine_s={e_s:.3f} ratio={n_s / e_s:.2f}")


if __name__ == "__main__":
    main()
