"""Training speed by arithmetic and layout, side by side: fp32, fp32 channels_last, bf16 autocast channels_last,
and each of them under torch.compile; images/s of training steps and the achieved FLOP/s as a fraction of this
core's dense GEMM FLOP/s at the same precision (the limit of the core).

The model is the CPU budget's (quarter-width resnet10t, 28x28, batch 64, one thread by default); each variant takes
SGD steps on one batch of real Fashion-MNIST images (forward, loss, backward, update), alternated A B C ... over
``--repeats`` rounds. Training FLOPs per image are taken as 3x the forward's (backward ~2x forward), counted by
``trials.probe.count_flops_g``. The GEMM limit is a square ``torch.matmul`` (``--gemm`` wide) at fp32 and bf16.
Compiled variants report their compile time separately (the first steps), which a short trial may not win back.

    python -m benchmarks.train_speed                  # CPU, 1 thread
    python -m benchmarks.train_speed --no-compile     # skip the torch.compile variants
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from benchmarks._common import alternate, emit, fill_defaults, header, parser, setup, summary, table
from benchmarks._loops import make_data, make_model
from trials.augment import normalize
from trials.probe import count_flops_g
from trials.speed import CANDIDATES

DEFAULTS = {"cpu": dict(model="resnet10t_quarter", batch_size=64, steps=8, repeats=5, gemm=1024)}
QUICK = dict(batch_size=8, steps=1, repeats=1, gemm=64)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def gemm_flops(*, size: int, dtype: torch.dtype, repeats: int = 5) -> float:
    """Median FLOP/s of a ``size`` x ``size`` matmul (2 size^3 FLOPs) in ``dtype`` on this CPU."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def _stepper(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, precision: str,
             channels_last: bool, compiled: bool, steps: int) -> tuple[Callable[[], int], float]:
    """A callable that takes ``steps`` SGD steps and returns the images it trained on, and its compile seconds."""
    model = copy.deepcopy(model).train()
    x = images.contiguous(memory_format=torch.channels_last) if channels_last else images
    if channels_last:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run() -> int:
        for _ in range(steps):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return steps * len(labels)

    start = time.perf_counter()
    run()  # the first call compiles (compiled) or creates oneDNN primitives (eager)
    return run, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="SGD steps per timed round")
    p.add_argument("--gemm", type=int, default=None, help="side of the square matmul that sets the FLOP/s limit")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variants")
    args = p.parse_args(argv)
    device = setup(args)
    if device.type != "cpu":
        raise SystemExit("benchmarks.train_speed measures CPU arithmetic; on a GPU see benchmarks.gpu_throughput")
    fill_defaults(args, device=device, defaults=DEFAULTS, quick=QUICK)
    data = make_data("synthetic" if args.quick else "fashion_mnist", train_size=max(args.batch_size, 64), val_size=16)
    model = make_model(args.model, in_chans=data.in_chans, num_classes=data.num_classes)
    images = normalize(data.train_x[:args.batch_size], mean=data.mean, std=data.std)
    labels = data.train_y[:args.batch_size]
    train_gflop = 3 * count_flops_g(model, input_shape=data.image_shape, device=device)  # per image
    limits = {name: gemm_flops(size=args.gemm, dtype=dtype) for name, dtype in _DTYPES.items()}

    variants, compile_s = {}, {}
    for label, (precision, channels_last) in CANDIDATES.items():
        for compiled in (False,) if args.no_compile or args.quick else (False, True):  # --quick: no compiling
            name = label + (" compiled" if compiled else "")
            variants[name], compile_s[name] = _stepper(model, images, labels, precision=precision,
                                                       channels_last=channels_last, compiled=compiled,
                                                       steps=args.steps)
    rates = alternate(variants, repeats=args.repeats, device=device, warmup=1)
    fp32 = statistics.median(rates.wall["fp32"])
    figures, rows = {}, []
    for name, wall in rates.wall.items():
        median = statistics.median(wall)
        precision = name.split("+")[0].split(" ")[0]
        fraction = median * train_gflop * 1e9 / limits[precision]
        figures[f"{name} img_s"] = median
        figures[f"{name} of_gemm"] = fraction
        rows.append((name, summary(wall), f"{median / fp32:.2f}", f"{median * train_gflop:.2f}",
                     f"{fraction:.1%}", f"{compile_s[name]:.1f}"))
    head = header(device, argv, "benchmarks.train_speed")
    body = (f"Model {args.model}, batch {args.batch_size}, {args.steps} steps per round, {args.repeats} rounds "
            f"alternated; training {train_gflop:.3f} GFLOP per image (3x forward). Dense GEMM limit "
            f"({args.gemm}x{args.gemm} matmul): fp32 {limits['fp32'] / 1e9:.1f} GFLOP/s, bf16 "
            f"{limits['bf16'] / 1e9:.1f} GFLOP/s.\n\n"
            + table(["variant", "img/s median (min–max)", "vs fp32", "GFLOP/s", "of GEMM at its precision",
                     "first call s"], rows))
    print(body)
    emit("Training speed by arithmetic (benchmarks.train_speed)", head, body)
    figures.update({f"gemm_gflops_{k}": v / 1e9 for k, v in limits.items()})
    return figures


if __name__ == "__main__":
    main()
