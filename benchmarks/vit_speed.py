"""Seconds per training epoch of the ViT CREs (a benchmark, not a test).

Measures ``Trainer.run_epoch()``'s ``train_seconds`` (the training pass only,
evaluation excluded) at batch size 512 for

* vit-small n=16 and n=256 on FashionMNIST (60,000 training images),
* vit-large n=32 on synthetic CIFAR-shaped images (3x32x32), scaled to
  CIFAR-10's 50,000 training images (CIFAR-10 itself is not available offline).

Where a full epoch would take long, a fixed number of full batches is trained
per "epoch" and the time is scaled linearly to the full training set; the
output says so on each such line. The reported figure is the median over
``--repeats`` epochs, after ``--warmup`` epochs that are not counted (the first
batches pay one-time costs: allocator, kernel selection).

    python benchmarks/vit_speed.py                 # CPU, 2 torch threads
    python benchmarks/vit_speed.py --device cuda --max-batches 0
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's cre, not an installed one

from cre import TensorData, Trainer, TrialSpec, load_dataset  # noqa: E402

BATCH = 512
# (model, n, dataset, images in a full epoch, default batches per measured epoch: None = the full epoch)
CASES = [
    ("vit-small", 16, "fashion_mnist", 60_000, None),
    ("vit-small", 256, "fashion_mnist", 60_000, None),
    ("vit-large", 32, "synthetic", 50_000, 2),
]


def subset(data: TensorData, images: int) -> TensorData:
    """The first ``images`` training images (repeated when the set is smaller) and 512 test images."""
    reps = -(-images // data.x_train.shape[0])
    x = data.x_train.repeat(reps, 1, 1, 1)[:images]
    y = data.y_train.repeat(reps)[:images]
    return TensorData(x, y, data.x_test[:BATCH], data.y_test[:BATCH])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="epochs measured per case; the median is reported")
    ap.add_argument("--warmup", type=int, default=1, help="epochs run first and not counted (default 1)")
    ap.add_argument(
        "--max-batches", type=int, default=None,
        help="batches per measured epoch for every case (0 = full epochs); default: per case",
    )
    ap.add_argument("--only", default=None, help="run only cases whose 'model n' label contains this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"batch {BATCH}, median of {args.repeats} epochs after {args.warmup} warm-up; {platform.processor() or platform.machine()}"
    )
    print(f"{'case':<34} {'measured':>22} {'median s':>9} {'s / epoch':>10}  note")
    for model, n, dataset, full, default_batches in CASES:
        label = f"{model} n={n} {dataset}"
        if args.only and args.only not in label:
            continue
        batches = default_batches if args.max_batches is None else (args.max_batches or None)
        shape = (3, 32, 32) if model == "vit-large" else (1, 28, 28)
        data = load_dataset(dataset, device=args.device, shape=shape)
        if batches is None and data.x_train.shape[0] != full:  # the synthetic set is small: tile it
            data = subset(data, full)
        elif batches is not None:
            data = subset(data, batches * BATCH)
        measured = data.x_train.shape[0]
        spec = TrialSpec(model=model, dataset=dataset, latent_dim=n, lam=0.5, epochs=args.warmup + args.repeats,
                         batch_size=BATCH)
        trainer = Trainer(spec, device=args.device, data=data)
        t0 = time.perf_counter()
        warm = [trainer.run_epoch().train_seconds for _ in range(args.warmup)]
        secs = [trainer.run_epoch().train_seconds for _ in range(args.repeats)]
        med = statistics.median(secs)
        per_epoch = med * full / measured
        notes = []
        if measured != full:
            notes.append(f"extrapolated from {measured // BATCH} batches ({measured} images) to {full:,} images")
        if dataset == "synthetic":
            notes.append("synthetic CIFAR-shaped data (CIFAR-10 not available offline)")
        what = f"{measured} img x {args.repeats}"
        print(f"{label:<34} {what:>22} {med:>9.2f} {per_epoch:>10.1f}  {'; '.join(notes) or 'full epoch'}"
              f"  [warm-up {', '.join(f'{s:.2f}' for s in warm) or '-'}; epochs {', '.join(f'{s:.2f}' for s in secs)}; wall {time.perf_counter() - t0:.0f}s]",
              flush=True)


if __name__ == "__main__":
    main()
