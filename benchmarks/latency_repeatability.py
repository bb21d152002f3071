"""Latency probe repeatability: per architecture, median and CV over repeats; rank agreement between repeats.

Three architectures on one backbone (default: the CPU budget's quarter-width resnet10t): no attention, SE after
every block, CBAM after every block. Each repeat calls `trials.measure_latency` (a trial's ProbeConfig: 10 warm-up
passes, median of 30) once per architecture, architectures interleaved, at batch 1 and at the throughput batch, each with the
plain backbone as the interleaved reference (as trials do with latency.reference=true), which also gives
latency_rel = median / the reference's median. CV = standard deviation / mean of the repeat medians. Spearman: rank correlation of the architectures' latencies between
repeat 1 and repeat 2, and the lowest over all pairs of repeats. Targets (issue 4): CV ≤ 5% on CPU, ≤ 2% on GPU.
CPU share: this process's CPU time / wall time during each measurement (range over the repeats); with one thread,
well under 100% means the process was waiting for a core, i.e. other load on the machine was in the timings.

    python -m benchmarks.latency_repeatability                 # CPU, 1 thread, 28×28×1 input
    python -m benchmarks.latency_repeatability --device cuda   # GPU, CIFAR ResNet-18, 32×32×3 input
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence

from benchmarks._common import emit, fill_defaults, header, parser, setup, spearman, table
from benchmarks._loops import MODELS, make_model
from trials import ProbeConfig, measure_latency
from trials.probe import latency_keys, relative_latency_key

ARCHS: dict[str, dict] = {  # the attention put at all four stages, after every block
    "none": {"attn": "none"},
    "se r8": {"attn": "se", "reduction": 8},
    "cbam r8 k7": {"attn": "cbam", "reduction": 8, "kernel_size": 7},
}
DEFAULTS = {
    # warmup and runs: a trial's (ProbeConfig's defaults)
    "cpu": dict(model="resnet10t_quarter", input_shape="1,28,28", batch=32, warmup=ProbeConfig().warmup,
                runs=ProbeConfig().runs, repeats=5),
    "cuda": dict(model="resnet18", input_shape="3,32,32", batch=256, warmup=ProbeConfig().warmup,
                 runs=ProbeConfig().runs, repeats=5),
}
QUICK = dict(batch=4, warmup=1, runs=3, repeats=2)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print figures and the markdown block; returns the worst CV and worst Spearman per batch."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default=None)
    p.add_argument("--input-shape", default=None, help="C,H,W of one image")
    p.add_argument("--batch", type=int, default=None, help="the throughput batch (batch 1 is always measured)")
    p.add_argument("--warmup", type=int, default=None, help="untimed passes per measurement")
    p.add_argument("--runs", type=int, default=None, help="timed passes per measurement (their median is one repeat)")
    args = p.parse_args(argv)
    device = setup(args)
    fill_defaults(args, device=device, defaults=DEFAULTS, quick=QUICK)
    shape = tuple(int(v) for v in args.input_shape.split(","))
    models = {name: make_model(args.model, in_chans=shape[0], num_classes=10, stage=stage).to(device).eval()
              for name, stage in ARCHS.items()}
    # The search's default: each trial also times the plain backbone interleaved (latency.reference=true).
    reference = make_model(args.model, in_chans=shape[0], num_classes=10, stage=ARCHS["none"]).to(device).eval()

    batches = (1, args.batch)
    medians = {(b, name): [] for b in batches for name in ARCHS}  # repeat medians, ms
    relative = {(b, name): [] for b in batches for name in ARCHS}  # repeat medians / the reference's
    shares = {(b, name): [] for b in batches for name in ARCHS}  # CPU seconds / wall seconds of each measurement
    probe = ProbeConfig(warmup=args.warmup, runs=args.runs)  # fp32, the model's own layout
    for _ in range(args.repeats):
        for b in batches:
            for name, model in models.items():
                wall, cpu = time.perf_counter(), time.process_time()
                result = measure_latency(model, probe, input_shape=shape, device=device, batch_size=b,
                                         reference=reference)
                shares[b, name].append((time.process_time() - cpu) / (time.perf_counter() - wall))
                medians[b, name].append(result[latency_keys(b)[0]])
                relative[b, name].append(result[relative_latency_key(b)])

    def cv(values: list[float]) -> float:
        return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else float("nan")

    def rank_agreement(values: dict) -> tuple[float, float]:
        per_repeat = [[values[b, name][r] for name in ARCHS] for r in range(args.repeats)]
        rho_12 = spearman(per_repeat[0], per_repeat[1]) if args.repeats > 1 else float("nan")
        return rho_12, min((spearman(x, y) for x, y in itertools.combinations(per_repeat, 2)), default=float("nan"))

    rows, figures = [], {}
    for b in batches:
        (rho_12, rho_min), (rel_12, rel_min) = rank_agreement(medians), rank_agreement(relative)
        for i, name in enumerate(ARCHS):
            ms, rel, share = medians[b, name], relative[b, name], shares[b, name]
            rows.append([b, name, f"{statistics.median(ms):.3f}", f"{min(ms):.3f}–{max(ms):.3f}", f"{cv(ms):.1%}",
                         f"{statistics.median(rel):.3f}", f"{cv(rel):.1%}", f"{min(share):.0%}–{max(share):.0%}",
                         f"{rho_12:.2f} (min {rho_min:.2f}) / {rel_12:.2f} (min {rel_min:.2f})" if i == 0 else ""])
        figures[f"max_cv_b{b}"] = max(cv(medians[b, name]) for name in ARCHS)
        figures[f"max_rel_cv_b{b}"] = max(cv(relative[b, name]) for name in ARCHS if name != "none")
        figures[f"spearman_b{b}"], figures[f"spearman_rel_b{b}"] = rho_min, rel_min
    target = 0.05 if device.type == "cpu" else 0.02
    worst = max(v for k, v in figures.items() if k.startswith("max_cv"))
    worst_rel = max(v for k, v in figures.items() if k.startswith("max_rel_cv"))
    body = (
        f"{args.model}, input {args.input_shape}, attention at all 4 stages after every block; "
        f"`measure_latency` with `ProbeConfig(warmup={args.warmup}, runs={args.runs})` × {args.repeats} repeats, "
        f"architectures interleaved.\n\n"
        + table(["batch", "architecture", "median ms", "min–max of repeat medians", "CV", "latency_rel",
                 "CV of latency_rel", "CPU share", "Spearman rep 1 vs 2 (min over pairs): ms / rel"], rows)
        + f"\n\nTarget: CV ≤ {target:.0%} on {device.type.upper()} → worst CV of the milliseconds {worst:.1%}: "
        f"{'met' if worst <= target else 'NOT met'}; worst CV of latency_rel (the attention archs; 'none' is the "
        f"reference's twin) {worst_rel:.1%}: {'met' if worst_rel <= target else 'NOT met'}."
    )
    emit("Latency probe repeatability", header(device, argv, "benchmarks.latency_repeatability"), body)
    return figures


if __name__ == "__main__":
    main()
