"""Does eager PyTorch latency rank architectures as ONNX Runtime does? Over the ground-truth table's architectures.

Issue 23, item 3. Every architecture of the ground-truth table's space (``benchmarks.attention_table``: 4 stages
of the CPU budget's quarter-width resnet10t, each none / SE r16 / ECA k3 after every block; ``--types`` widens it,
e.g. ``none,se,eca,cbam``) is built once, exported to ONNX (``trials.runtime``) and timed at batch 1 on one thread
in both runtimes: ``--rounds`` independent rounds, each the probe's 10 warm-up and median of 30 passes, the two
runtimes interleaved pass by pass (``trials.probe.time_runners``), so both see the same machine state. It prints
Kendall tau and Spearman between the eager and the ONNX Runtime ranking (round 1 of each: timed in the same moments,
so machine-load noise they share inflates it; and eager round 1 vs ONNX Runtime round 2, which shares none), and
each runtime's round-1-vs-round-2 tau: the repeatability that bounds any cross-runtime agreement.
"""
from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

import torch

from backbones import StageConfig, build
from benchmarks._common import emit, header, parser, setup, spearman, table
from benchmarks.attention_table import KNOBS, NUM_STAGES, base_arch
from trials.probe import ProbeConfig, time_runners
from trials.runtime import RUNTIMES

PROBE = ProbeConfig()  # the search's defaults: 10 warm-up passes, median of 30
_KNOBS = {**KNOBS, "cbam": {"reduction": 16, "kernel_size": 7}, "nl": {"reduction": 8}, "gc": {"reduction": 8}}


def _kendall(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy import stats

    return float(stats.kendalltau(a, b).statistic)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--types", default="none,se,eca", help="attention types per stage (default: the table's)")
    p.add_argument("--rounds", type=int, default=2, help="independent timing rounds per runtime (>= 2)")
    args = p.parse_args(argv)
    device = setup(args)
    if device.type != "cpu":
        raise SystemExit("benchmarks.runtime_latency compares CPU runtimes (ONNX Runtime's CPU provider)")
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    archs = list(itertools.product(types, repeat=NUM_STAGES))
    if args.quick:
        archs = archs[:4]
    runs, warmup = (5, 1) if args.quick else (PROBE.runs, PROBE.warmup)
    base = base_arch()
    shape = (1, *((28, 28) if base.in_chans == 1 else (32, 32)))
    x = torch.randn(1, *shape)
    medians: dict[str, list[list[float]]] = {name: [[] for _ in range(args.rounds)] for name in RUNTIMES}
    for i, kinds in enumerate(archs):
        stages = tuple(StageConfig() if k == "none" else StageConfig(attn=k, **_KNOBS[k]) for k in kinds)
        torch.manual_seed(0)
        model = build(base.__class__.from_dict({**base.to_dict(), "stages": [s.to_dict() for s in stages]})).eval()
        runners = [RUNTIMES[name](model, x) for name in RUNTIMES]
        for r in range(args.rounds):
            times = time_runners(runners, runs=runs, warmup=warmup)
            for name, t in zip(RUNTIMES, times):
                medians[name][r].append(statistics.median(t))
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{len(archs)} architectures timed", flush=True)
    eager, ort = medians["torch"], medians["onnxruntime"]
    figures = {
        "kendall_eager_vs_onnxruntime": _kendall(eager[0], ort[0]),
        "spearman_eager_vs_onnxruntime": spearman(eager[0], ort[0]),
        "kendall_eager_vs_onnxruntime_other_round": _kendall(eager[0], ort[1]),
        "kendall_eager_repeat": _kendall(eager[0], eager[1]),
        "kendall_onnxruntime_repeat": _kendall(ort[0], ort[1]),
        "median_ratio_eager_over_onnxruntime": statistics.median(e / o for e, o in zip(eager[0], ort[0])),
        "eager_ms_median": statistics.median(eager[0]), "onnxruntime_ms_median": statistics.median(ort[0]),
    }
    rows = [("eager PyTorch vs ONNX Runtime (round 1)", f"{figures['kendall_eager_vs_onnxruntime']:.2f}",
             f"{figures['spearman_eager_vs_onnxruntime']:.2f}"),
            ("eager round 1 vs ONNX Runtime round 2 (no shared moment)",
             f"{figures['kendall_eager_vs_onnxruntime_other_round']:.2f}", f"{spearman(eager[0], ort[1]):.2f}"),
            ("eager round 1 vs round 2", f"{figures['kendall_eager_repeat']:.2f}",
             f"{spearman(eager[0], eager[1]):.2f}"),
            ("ONNX Runtime round 1 vs round 2", f"{figures['kendall_onnxruntime_repeat']:.2f}",
             f"{spearman(ort[0], ort[1]):.2f}")]
    body = (f"{len(archs)} architectures ({', '.join(types)} at each of {NUM_STAGES} stages), batch 1, "
            f"median of {runs} after {warmup} warm-up passes per round, runtimes interleaved. Median latency: eager "
            f"{figures['eager_ms_median']:.3f} ms (min {min(eager[0]):.3f}, max {max(eager[0]):.3f}), ONNX Runtime "
            f"{figures['onnxruntime_ms_median']:.3f} ms (min {min(ort[0]):.3f}, max {max(ort[0]):.3f}); eager / "
            f"ONNX Runtime per architecture: median {figures['median_ratio_eager_over_onnxruntime']:.2f}x.\n\n"
            + table(["rankings compared", "Kendall tau", "Spearman"], rows))
    print(body)
    emit("Eager vs ONNX Runtime latency ranking (benchmarks.runtime_latency)",
         header(device, argv, "benchmarks.runtime_latency"), body)
    return figures


if __name__ == "__main__":
    main()
