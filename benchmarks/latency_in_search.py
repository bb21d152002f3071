"""Latency repeatability inside a real concurrent search, with and without the exclusive probe slot.

Issue 10's target: the same architecture probed twice in one real search (two trials training at once on a 2-core
machine) gives ``latency_ms`` within 3% (median over pairs of repeats). This runs a real Ray Tune search: the
project's trainable ``search.execution.trainable.train_architecture`` with the ``TrialSettings`` that ``search.plan_check.prepare``
builds from the composed ``run`` config (CPU budget of ``spaces/fashion_attention.yaml``: quarter-width resnet10t,
1 thread and 1 CPU per trial, 2 trials at once), real Fashion-MNIST (a seeded subset via ``trials.load_dataset``),
short training (2 epochs of 512 images) so that probes overlap the other trial's training. The architectures are
the search's default controls: the plain backbone, SE r16 and CBAM r16/k7 after every block of every stage; each
is a ``tune.grid_search`` point repeated ``--repeats`` times (trials in the order A B C A B C …). Every trial probes
as in a search: 10 warm-up passes, median of 30 at batch 1 (``latency_ms``), the plain backbone timed interleaved
(``latency_rel``); the throughput batch is off (``latency.batch=0``) so the probe is as short as in a real search
relative to training.

The search runs twice in one Ray runtime, one after the other: with the slot (``TrialSettings.probe_lock`` as the
plan sets it: while one trial times, the other waits between steps) and without it (``probe_lock=None``: the old
behaviour). Per architecture: the repeats' ``latency_ms``, their median, and |a − b| / min(a, b) over all pairs of
repeats; then the median over all pairs of all architectures, the figure the target is about. The slot cannot keep
out load from outside the search (other users of the machine): see the load average in the header.

    python -m benchmarks.latency_in_search                # both, 3 archs × 5 repeats each (~3 min on 2 cores)
    python -m benchmarks.latency_in_search --slot on      # only with the slot
    python -m benchmarks.latency_in_search --slot off,on  # without it first
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks._common import emit, header, parser, setup, table

TARGET = 0.03  # issue 10: median over pairs of repeats of |a - b| / min(a, b)
DEFAULTS = dict(repeats=5, train_size=512, val_size=256, epochs=2, runs=30, warmup=10)
QUICK = dict(repeats=2, train_size=64, val_size=64, epochs=1, runs=3, warmup=1)


def pairwise(values: Sequence[float]) -> list[float]:
    """|a − b| / min(a, b) for every pair of values (dimensionless; 0.03 = 3%)."""
    return [abs(a - b) / min(a, b) for a, b in itertools.combinations(values, 2)]


def _plan(folder: Path, args) -> object:
    """The checked SearchPlan that ``search.run`` would make, for the CPU budget with the benchmark's sizes."""
    from hydra import compose, initialize

    from search.plan_check import prepare

    overrides = ["name=latency", "space=fashion_attention", "device=cpu", "concurrency=2",
                 f"budget.train_size={args.train_size}", f"budget.val_size={args.val_size}",
                 f"budget.epochs={args.epochs}", f"latency.runs={args.runs}", f"latency.warmup={args.warmup}",
                 "latency.batch=0", f"storage={folder / 'runs'}",
                 f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}"]
    with initialize(version_base=None, config_path=None):
        import search.settings.config  # noqa: F401  registers the "run" config
        return prepare(compose(config_name="run", overrides=overrides))


def _search(plan, *, archs: dict, slot: bool, repeats: int, folder: Path,
            run: int) -> tuple[dict[str, list[dict]], float]:
    """One Ray Tune run of ``train_architecture`` over archs × repeats, 2 at a time; metrics per arch, wall s."""
    from ray import tune

    from search.execution.trainable import train_architecture

    name = f"{run}-slot-{'on' if slot else 'off'}"
    settings = plan.trial_settings
    # as search.plan_check does, but in this run's own folder; None: no slot (trials time while others train)
    settings = dataclasses.replace(settings, probe_lock=(folder / "runs" / name / ".probe.lock") if slot else None)
    trainable = tune.with_resources(
        tune.with_parameters(train_architecture, data=plan.data, settings=settings,
                             latency_reference=plan.calibration.latency_reference),
        {"cpu": plan.budget.cpu_per_trial})
    by_label = {str(arch): label for label, arch in archs.items()}
    tuner = tune.Tuner(
        trainable,
        param_space={"arch": tune.grid_search([arch.to_dict() for arch in archs.values()])},
        tune_config=tune.TuneConfig(num_samples=repeats, max_concurrent_trials=plan.execution.concurrency,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(folder / "runs"), verbose=0),
    )
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    if results.errors:
        raise RuntimeError(f"{len(results.errors)} trial(s) failed: {results.errors[0]}")
    from backbones import ArchConfig

    per_arch: dict[str, list[dict]] = {label: [] for label in archs}
    for result in sorted(results, key=lambda r: r.metrics["trial_id"]):
        per_arch[by_label[str(ArchConfig.from_dict(result.config["arch"]))]].append(result.metrics)
    return per_arch, wall


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the search(es), print the figures and the markdown block; returns the median pairwise differences."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--slot", default="on,off",
                   help="searches to run, one after the other: on = with the exclusive probe slot, off = without "
                        "(default on,off; e.g. off,on or on,off,on,off to see the order's effect)")
    p.add_argument("--train-size", type=int, default=None, help="training images per trial (default 512)")
    p.add_argument("--val-size", type=int, default=None, help="validation images per trial (default 256)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 2)")
    p.add_argument("--runs", type=int, default=None, help="timed passes per probe (default 30, as a search)")
    p.add_argument("--warmup", type=int, default=None, help="untimed passes per probe (default 10, as a search)")
    args = p.parse_args(argv)
    for key, value in {**DEFAULTS, **(QUICK if args.quick else {})}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.device != "cpu":
        p.error("--device: this benchmark runs the CPU budget (2 one-thread trials on a 2-core machine) only")
    device = setup(args)

    from search.execution.tuner import ray_runtime

    try:
        modes = [{"on": True, "off": False}[mode] for mode in args.slot.split(",")]
    except KeyError:
        p.error(f"--slot {args.slot!r}: a comma-separated list of on / off")
    figures: dict[str, float] = {}
    rows, summary_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plan = _plan(folder, args)
        archs = plan.space.control_archs(base=plan.base_arch)  # plain, SE r16, CBAM r16/k7 at every stage
        with ray_runtime(num_cpus=plan.execution.concurrency * plan.budget.cpu_per_trial):
            measured = [(slot, *_search(plan, archs=archs, slot=slot, repeats=args.repeats, folder=folder, run=i))
                        for i, slot in enumerate(modes)]
    for i, (slot, per_arch, wall) in enumerate(measured):
        mode = "with slot" if slot else "without slot"
        key = ("on" if slot else "off") + (f"_{modes[:i + 1].count(slot)}" if modes.count(slot) > 1 else "")
        mode += f" ({key.split('_')[1]})" if "_" in key else ""
        all_pairs, all_rel_pairs, iqrs = [], [], []
        for label, metrics in per_arch.items():
            ms = [m["latency_ms"] for m in metrics]
            rel = [m["latency_rel"] for m in metrics if "latency_rel" in m]
            pairs, rel_pairs = pairwise(ms), pairwise(rel)
            iqrs += [m["latency_iqr_ms"] / m["latency_ms"] for m in metrics]
            all_pairs += pairs
            all_rel_pairs += rel_pairs
            rows.append([mode, label, " ".join(f"{v:.3f}" for v in ms), f"{statistics.median(ms):.3f}",
                         f"{statistics.median(pairs):.1%} / {max(pairs):.1%}" if pairs else "–",
                         " ".join(f"{v:.3f}" for v in rel),
                         f"{statistics.median(rel_pairs):.1%} / {max(rel_pairs):.1%}" if rel_pairs else "–"])
        figures[f"median_pair_{key}"] = statistics.median(all_pairs) if all_pairs else float("nan")
        figures[f"median_pair_rel_{key}"] = statistics.median(all_rel_pairs) if all_rel_pairs else float("nan")
        figures[f"wall_s_{key}"] = wall
        summary_rows.append([mode, f"**{figures[f'median_pair_{key}']:.1%}**",
                             f"{max(all_pairs):.1%}" if all_pairs else "–",
                             f"{figures[f'median_pair_rel_{key}']:.1%}", f"{statistics.median(iqrs):.1%}",
                             f"{wall:.0f}",
                             "met" if figures[f"median_pair_{key}"] <= TARGET else "NOT met"])
    n = args.repeats
    body = (
        f"Real Ray Tune search, `search.execution.trainable.train_architecture` with the plan's `TrialSettings` (fashion_attention "
        f"CPU budget: resnet10t quarter width, 1 thread / 1 CPU per trial, {plan.execution.concurrency} trials at once), "
        f"Fashion-MNIST {args.train_size} train / {args.val_size} val images, {args.epochs} epoch(s), probe "
        f"{args.warmup} warm-up + median of {args.runs} at batch 1 with the plain backbone interleaved; "
        f"{len(archs)} architectures × {n} repeats = {len(archs) * n} trials per search; "
        f"{' then '.join('with the slot' if s else 'without it' for s in modes)}, one Ray runtime.\n\n"
        + table(["search", "architecture", f"latency_ms of the {n} repeats", "median ms",
                 "pairwise diff: median / max", "latency_rel of the repeats", "latency_rel pairwise: median / max"],
                rows)
        + "\n\n"
        + table(["search", f"median over all {len(archs) * n * (n - 1) // 2} pairs (latency_ms)", "max pair",
                 "median over pairs (latency_rel)", "median IQR / median within a probe", "search wall s",
                 f"target ≤ {TARGET:.0%}"], summary_rows)
    )
    emit("Latency repeatability inside a concurrent search", header(device, argv, "benchmarks.latency_in_search"),
         body)
    return figures


if __name__ == "__main__":
    main()
