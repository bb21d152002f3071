"""The trial's training loop against a bare PyTorch loop: same model, data, device and optimiser; images/s and ratio.

The trial side is `trials.train.train_epochs` (one epoch). The bare side (`benchmarks._loops.bare_train`) makes the
same augmentation calls on the same device-resident uint8 data and takes the same SGD steps, without the LR
schedule, the per-step loss bookkeeping, the NaN checks, the seeded generator or the metrics. Both then run one
forward pass over the same validation split, so both do the same work. Each side trains its own copy of one
initialisation. Target (issue 4): the trial loop at most 5% slower than the bare loop.

    python -m benchmarks.trial_vs_bare                  # CPU: quarter-width resnet10t, Fashion-MNIST subset
    python -m benchmarks.trial_vs_bare --device cuda    # GPU: CIFAR ResNet-18 on CIFAR-shaped random data
    python -m benchmarks.trial_vs_bare --probe-slot     # the trial loop holds a search's exclusive probe slot
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks._common import alternate, emit, fill_defaults, header, parser, setup, summary, table
from benchmarks._loops import MODELS, bare_eval, bare_train, device_batches, make_data, make_model
from trials import ProbeSlot
from trials.train import TrainConfig, train_epochs

DEFAULTS = {
    "cpu": dict(model="resnet10t_quarter", data="fashion_mnist", train_size=2048, val_size=512, batch_size=64,
                lr=0.05, repeats=5),  # the CPU budget's model, batch and lr; ~1-2 min on 2 cores
    "cuda": dict(model="resnet18", data="cifar_like", train_size=25_000, val_size=1000, batch_size=512,
                 lr=0.2, repeats=5),  # the GPU budget's batch and lr
}
QUICK = dict(data="synthetic", train_size=64, val_size=16, batch_size=16, repeats=1)
WEIGHT_DECAY = 5e-4  # as both budgets


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print figures and the markdown block; returns the medians (images/s) and their ratio."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default=None)
    p.add_argument("--data", choices=["fashion_mnist", "synthetic", "cifar_like"], default=None)
    p.add_argument("--train-size", type=int, default=None, help="training images (one epoch per timed round)")
    p.add_argument("--val-size", type=int, default=None, help="validation images (one forward per round, both sides)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--probe-slot", action="store_true",
                   help="the trial loop holds an exclusive probe slot (trials.ProbeSlot) as in a search: shared, "
                        "paused before every step (uncontended here, so this measures the locking's own cost)")
    args = p.parse_args(argv)
    device = setup(args)
    fill_defaults(args, device=device, defaults=DEFAULTS, quick=QUICK)

    data = make_data(args.data, train_size=args.train_size, val_size=args.val_size).to(device)
    init = make_model(args.model, in_chans=data.in_chans, num_classes=data.num_classes).to(device)
    trial_model, bare_model = copy.deepcopy(init), copy.deepcopy(init)
    steps = args.train_size // args.batch_size

    lock_dir = tempfile.TemporaryDirectory()
    slot = ProbeSlot(Path(lock_dir.name) / ".probe.lock" if args.probe_slot else None, device=device)  # None: no-op

    def trial() -> int:
        cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=args.lr, weight_decay=WEIGHT_DECAY)
        next(iter(train_epochs(trial_model, data, cfg, device=device, slot=slot)))
        return steps * args.batch_size

    def bare() -> int:
        images = bare_train(bare_model, device_batches(data, batch_size=args.batch_size), lr=args.lr,
                            weight_decay=WEIGHT_DECAY, device=device)
        bare_eval(bare_model, data, device=device)
        return images

    rates = alternate({"trial loop": trial, "bare loop": bare}, repeats=args.repeats, device=device)
    slot.close()
    lock_dir.cleanup()
    trial_rate, bare_rate = (statistics.median(rates.wall[k]) for k in ("trial loop", "bare loop"))
    ratio = trial_rate / bare_rate
    paired = rates.paired_ratio("trial loop", "bare loop")
    cpu_ratio = statistics.median(rates.cpu["trial loop"]) / statistics.median(rates.cpu["bare loop"])
    rows = [[name, summary(rates.wall[name]), summary(rates.cpu[name])] for name in rates.wall]
    rows.append(["trial / bare", f"{ratio:.3f} (ratio of medians); {paired:.3f} (median of per-round ratios)",
                 f"{cpu_ratio:.3f}"])
    slot_note = "; the trial loop holds an (uncontended) probe slot, paused before every step" if slot.enabled else ""
    body = (
        f"{args.model}, {args.data}: {args.train_size} training images/round, batch {args.batch_size}, "
        f"{args.val_size} validation images/round, {args.repeats} rounds alternated (trial, bare, trial, …) "
        f"after one warm-up round each{slot_note}.\n\n"
        + table(["loop", "training images/s, wall clock: median (min–max)",
                 "per CPU-second: median (min–max)"], rows) +
        f"\n\nTarget: trial loop ≤ 5% slower than bare → trial {abs(1 - ratio):.1%} "
        f"{'slower' if ratio < 1 else 'faster'} by wall-clock medians: {'met' if ratio >= 0.95 else 'NOT met'}."
    )
    emit("Trial loop vs bare loop", header(device, argv, "benchmarks.trial_vs_bare"), body)
    return {"trial_images_per_s": trial_rate, "bare_images_per_s": bare_rate, "ratio": ratio, "paired_ratio": paired,
            "cpu_ratio": cpu_ratio}


if __name__ == "__main__":
    main()
