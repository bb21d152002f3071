"""Orchestration overhead: N trivial trials through the real search path against the same trials called directly.

The search side is ``search.run.run`` (Hydra config, Ray Tune with Optuna and ASHA, MLflow on SQLite, reports), with a
budget so small that a trial is almost only overhead (64 training images, 1 epoch, 1 latency run). The direct side
rebuilds the very ArchConfigs the search sampled and runs ``trials.run_trial`` on them in a loop, in this process.
Both run one trial at a time (``concurrency=1``). Two search sizes separate the fixed cost (Ray start, data, MLflow
parent run, reports) from the marginal cost per trial. Target (issue 4): at most 0.5 s of overhead per trial.
Needs Ray and MLflow (CPU machine); the GPU benchmarks do not.

    python -m benchmarks.orchestration                 # 4 and 12 trials
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks._common import emit, header, parser, setup, table


def _search(folder: Path, *, trials: int, name: str) -> tuple[float, list[dict]]:
    """Run the real search in ``folder``; returns its wall seconds and the ArchConfigs of its trials."""
    from hydra import compose, initialize
    from ray.tune import ExperimentAnalysis

    from search.run import run  # imports search.settings.config, which registers the "run" config

    overrides = [f"name={name}", f"budget.trials={trials}", "budget.epochs=1", "budget.train_size=64",
                 "budget.val_size=64", "budget.batch_size=32", "latency.runs=1", "latency.warmup=0",
                 "latency.batch=0", "concurrency=1", "sampler=random", "confirm.enabled=false", f"storage={folder / 'runs'}",
                 "train.precision=fp32",  # the precision timing is a fixed start cost (benchmarks.train_speed)
                 f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}"]
    with initialize(version_base=None, config_path=None):
        cfg = compose(config_name="run", overrides=overrides)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            summary = run(cfg)
        wall = time.perf_counter() - start
    finally:
        os.chdir(cwd)
    # the 3 default controls (plain, se_r16, cbam_r16_k7) run in every search: both sizes have them, and the direct
    # loop runs them too, so they cancel in the overhead figures
    assert summary.trials == trials + 3 and summary.failed == 0, summary
    archs = [t.config["arch"] for t in ExperimentAnalysis(str(folder / "runs" / name)).trials]
    return wall, archs


def _direct(archs: list[dict]) -> float:
    """Wall seconds to load the same data and run the same trials with ``run_trial``, no Ray, no MLflow."""
    from backbones import build
    from trials import ProbeConfig, TrainConfig, load_dataset, run_trial

    start = time.perf_counter()
    data = load_dataset("fashion_mnist", train_size=64, val_size=64, seed=0)
    train, probe = TrainConfig(epochs=1, batch_size=32), ProbeConfig(runs=1, warmup=0, batch=0)
    for arch in archs:
        torch.manual_seed(0)
        run_trial(model=build(arch), data=data, train=train, probe=probe, device="cpu", threads=1)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run both sizes, print the figures and the markdown block; returns seconds per trial (fixed, marginal)."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"),
                   help="trials in the two searches (default 4 12; --quick: 1 2)")
    args = p.parse_args(argv)
    small, large = args.sizes or ((1, 2) if args.quick else (4, 12))
    device = setup(args)
    rows, overhead = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (small, large):
            (Path(tmp) / f"n{n}").mkdir()
            search_s, archs = _search(Path(tmp) / f"n{n}", trials=n, name=f"overhead{n}")
            direct_s = _direct(archs)
            overhead[n] = search_s - direct_s
            rows.append([str(n), f"{search_s:.1f}", f"{direct_s:.1f}", f"{overhead[n]:.1f}",
                         f"{overhead[n] / n:.2f}"])
    marginal = (overhead[large] - overhead[small]) / (large - small)
    fixed = overhead[small] - marginal * small
    result = {"fixed_s": fixed, "marginal_s_per_trial": marginal}
    emit(
        title="Orchestration overhead (Ray Tune + Optuna + ASHA + MLflow) against direct calls",
        head=header(device, argv, "benchmarks.orchestration"),
        body=table(["trials", "search s", "direct s", "overhead s", "overhead s/trial"], rows)
        + f"\n\nMarginal overhead per trial: **{marginal:.2f} s** (target ≤ 0.5 s); fixed cost per search "
          f"(Ray start, MLflow parent run, reports): {fixed:.1f} s.",
    )
    return result


if __name__ == "__main__":
    main()
