"""The device-resident data pipeline against a torchvision DataLoader: data-only and end-to-end rates, ratios.

Device pipeline (what trials.train does): the uint8 split lives on the device; each batch is an index into it,
then `trials.augment.augment` (random crop with padding, horizontal flip) and `normalize` on the whole batch.
DataLoader: the same images served one PIL image at a time through RandomCrop(padding), RandomHorizontalFlip,
ToTensor, Normalize (as torchvision's CIFAR10 / FashionMNIST datasets do), batches moved to the device.
Data only: one epoch of batches, ready on the device. End to end: the same bare training loop
(`benchmarks._loops.bare_train`) fed by each, on copies of one model. All variants alternate round by round.

    python -m benchmarks.data_pipeline                              # CPU, Fashion-MNIST, workers 0 and 2
    python -m benchmarks.data_pipeline --device cuda --workers 0,8  # GPU, CIFAR-shaped data, CIFAR ResNet-18
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from collections.abc import Callable, Iterable, Sequence

from benchmarks._common import alternate, emit, fill_defaults, header, parser, setup, summary, table
from benchmarks._loops import MODELS, bare_train, dataloader, device_batches, make_data, make_model
from trials import TensorData

DEFAULTS = {
    "cpu": dict(model="resnet10t_quarter", data="fashion_mnist", train_size=10_000, e2e_size=1024, batch_size=64,
                workers="0,2", repeats=5),  # 2 cores: more workers than cores only adds contention
    "cuda": dict(model="resnet18", data="cifar_like", train_size=50_000, e2e_size=25_000, batch_size=512,
                 workers="0,8", repeats=5),
}
QUICK = dict(data="synthetic", train_size=128, e2e_size=32, batch_size=16, workers="0", repeats=1)
LR, WEIGHT_DECAY = 0.05, 5e-4  # as the CPU budget; speed does not depend on them


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print figures and the markdown block; returns median rates (images/s) per variant."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default=None)
    p.add_argument("--data", choices=["fashion_mnist", "synthetic", "cifar_like"], default=None)
    p.add_argument("--train-size", type=int, default=None, help="images per data-only round")
    p.add_argument("--e2e-size", type=int, default=None, help="images per end-to-end training round")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--workers", default=None, help="comma-separated DataLoader num_workers to compare, e.g. 0,2")
    args = p.parse_args(argv)
    device = setup(args)
    fill_defaults(args, device=device, defaults=DEFAULTS, quick=QUICK)
    workers = [int(w) for w in str(args.workers).split(",")]
    pin = device.type == "cuda"

    data = make_data(args.data, train_size=args.train_size, val_size=16).to(device)
    small = dataclasses.replace(data, train_x=data.train_x[:args.e2e_size], train_y=data.train_y[:args.e2e_size])
    init = make_model(args.model, in_chans=data.in_chans, num_classes=data.num_classes).to(device)

    def epochs(d: TensorData) -> dict[str, Callable[[], Iterable]]:
        """Per feed, a callable that returns one epoch of (images, labels) batches over `d`."""
        feeds = {"device pipeline": lambda: device_batches(d, batch_size=args.batch_size)}
        for w in workers:
            loader = dataloader(d, batch_size=args.batch_size, workers=w, pin_memory=pin)
            feeds[f"DataLoader, {w} workers"] = lambda loader=loader: loader
        return feeds

    def consume(epoch: Callable[[], Iterable]) -> Callable[[], int]:
        def run() -> int:
            images = 0
            for x, y in epoch():
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # ready on the device
                images += len(y)
            return images
        return run

    def train(epoch: Callable[[], Iterable]) -> Callable[[], int]:
        model = copy.deepcopy(init)
        return lambda: bare_train(model, epoch(), lr=LR, weight_decay=WEIGHT_DECAY, device=device)

    data_only = alternate({name: consume(epoch) for name, epoch in epochs(data).items()},
                          repeats=args.repeats, device=device)
    end_to_end = alternate({name: train(epoch) for name, epoch in epochs(small).items()},
                           repeats=args.repeats, device=device)

    medians = {name: statistics.median(r) for name, r in data_only.wall.items()}
    e2e = {name: statistics.median(r) for name, r in end_to_end.wall.items()}
    first = "device pipeline"
    rows = [[name, f"{medians[name] / args.batch_size:,.1f}", summary(data_only.wall[name]),
             f"{medians[first] / medians[name]:.1f}×", summary(end_to_end.wall[name]),
             f"{e2e[first] / e2e[name]:.2f}×"] for name in medians]
    body = (
        f"{args.data}: data only {args.train_size} images/round; end to end {args.model}, {args.e2e_size} "
        f"images/round (bare loop); batch {args.batch_size}; {args.repeats} rounds alternated after one warm-up "
        f"round each; pin_memory {pin}.\n\n"
        + table(["feed", "data only: batches/s", "data only: images/s, median (min–max)", "device ÷ this",
                 "end to end: training images/s, median (min–max)", "device ÷ this"], rows)
    )
    emit("Data pipeline: device-resident vs DataLoader", header(device, argv, "benchmarks.data_pipeline"), body)
    return {**{f"data {k}": v for k, v in medians.items()}, **{f"train {k}": v for k, v in e2e.items()}}


if __name__ == "__main__":
    main()
