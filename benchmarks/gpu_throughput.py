"""CIFAR ResNet-18 training throughput on a GPU: the trial's loop on device-resident data vs a DataLoader-fed loop.

Model: timm resnet18 with the CIFAR stem (`small_input`: 3×3 stride-1 stem conv, no max-pool), 10 classes, 3×32×32
input, bf16 autocast, channels_last, cudnn.benchmark. Data: 50,000 CIFAR-shaped random uint8 images (speed does
not depend on pixel values). Variants, alternated round by round, each on its own copy of one initialisation:

- trial loop: `trials.train.train_epochs`, one epoch over the device-resident uint8 split (on-device augmentation);
- bare loop + device pipeline: the same batches through the bare loop (how much the trial's bookkeeping costs);
- bare loop + DataLoader: torchvision's per-image PIL transforms (RandomCrop 4, flip, ToTensor, Normalize),
  `--workers` processes, pin_memory, batches copied to the GPU.

Each round also runs one forward over the same 256 validation images (the trial loop validates every epoch).
`--model resnet10t_quarter` (a narrow model) is only for quick smoke runs on a CPU.
Targets (issue 4), on an H100: ≥ 30,000 images/s for the trial loop and ≥ 3× the DataLoader loop.
Needs only torch, torchvision and timm (no Ray, no MLflow).

    python -m benchmarks.gpu_throughput --device cuda                # the real run (add --compile to try it)
    python -m benchmarks.gpu_throughput --steps 2 --batch-size 16    # CPU smoke run
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence

import torch

from benchmarks._common import alternate, emit, fill_defaults, header, parser, setup, summary, table
from benchmarks._loops import MODELS, bare_eval, bare_train, cifar_like, dataloader, device_batches, make_model
from trials.train import TrainConfig, train_epochs

DEFAULTS = {
    "cuda": dict(model="resnet18", images=50_000, val_images=256, batch_size=512, workers=8, repeats=5),  # the GPU
    # budget's batch; 8 of the H100/H200 host's 16 cores as loader workers
    "cpu": dict(model="resnet18", images=50_000, val_images=256, batch_size=128, workers=2, repeats=3),
}
QUICK = dict(model="resnet10t_quarter", images=None, val_images=16, steps=2, batch_size=8, workers=0, repeats=1)
LR, WEIGHT_DECAY = 0.2, 5e-4  # the GPU budget's; speed does not depend on them


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print figures and the markdown block; returns median images/s per variant and ratios."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default=None, help="default resnet18 (CIFAR ResNet-18)")
    p.add_argument("--images", type=int, default=None, help="training images (one epoch per round); default 50,000")
    p.add_argument("--steps", type=int, default=None, help="steps per round instead: images = steps × batch size")
    p.add_argument("--val-images", type=int, default=None, help="validated every round by every variant (default 256)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="DataLoader num_workers (default 8 on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward in every variant")
    args = p.parse_args(argv)
    device = setup(args)
    fill_defaults(args, device=device, defaults=DEFAULTS, quick=QUICK)
    images = args.steps * args.batch_size if args.steps else args.images

    data = cifar_like(train_size=images, val_size=args.val_images).to(device)
    init = make_model(args.model, in_chans=3, num_classes=10).to(device)
    trial_model, bare_model, loader_model = (copy.deepcopy(init) for _ in range(3))
    loader = dataloader(data, batch_size=args.batch_size, workers=args.workers, pin_memory=device.type == "cuda")
    steps = images // args.batch_size

    def trial() -> int:
        cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=LR, weight_decay=WEIGHT_DECAY, compile=args.compile)
        next(iter(train_epochs(trial_model, data, cfg, device=device)))
        return steps * args.batch_size

    def bare(model: torch.nn.Module, epoch) -> int:
        forward = torch.compile(model) if args.compile else model
        done = bare_train(forward, epoch(), lr=LR, weight_decay=WEIGHT_DECAY, device=device)
        bare_eval(model, data, device=device)
        return done

    names = ("trial loop (device-resident)", "bare loop + device pipeline",
             f"bare loop + DataLoader ({args.workers} workers)")
    rates = alternate({
        names[0]: trial,
        names[1]: lambda: bare(bare_model, lambda: device_batches(data, batch_size=args.batch_size)),
        names[2]: lambda: bare(loader_model, lambda: loader),
    }, repeats=args.repeats, device=device)
    med = {name: statistics.median(r) for name, r in rates.wall.items()}
    fast, many = med[names[0]] >= 30_000, med[names[0]] >= 3 * med[names[2]]
    rows = [[name, summary(r), f"{med[names[0]] / med[name]:.2f}×"] for name, r in rates.wall.items()]
    body = (
        f"{args.model} (small_input) on CIFAR-shaped data, {steps} steps × batch {args.batch_size} per round, "
        f"{'bf16 autocast + channels_last' if device.type == 'cuda' else 'fp32 (CPU)'}, compile {args.compile}, "
        f"{args.repeats} rounds alternated after one warm-up round each.\n\n"
        + table(["variant", "training images/s: median (min–max)", "trial loop ÷ this"], rows)
        + f"\n\nTargets (H100): ≥ 30,000 images/s → {med[names[0]]:,.0f}; ≥ 3× the DataLoader loop → "
        f"{med[names[0]] / med[names[2]]:.2f}×. "
        + (f"{'Met' if fast else 'NOT met'} / {'met' if many else 'NOT met'} on this "
           f"{torch.cuda.get_device_name(device)}." if device.type == "cuda"
           else "Not assessed: this is not a GPU run.")
    )
    emit("GPU throughput: CIFAR ResNet-18", header(device, argv, "benchmarks.gpu_throughput"), body)
    return {"trial_images_per_s": med[names[0]], "bare_images_per_s": med[names[1]],
            "dataloader_images_per_s": med[names[2]], "ratio_vs_dataloader": med[names[0]] / med[names[2]]}


if __name__ == "__main__":
    main()
