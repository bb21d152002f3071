"""How many trials to pack on one GPU: combined training throughput of k trials at once vs one alone.

Each trial is the search's own trial path (`trials.run_trial`) in its own spawned process, as Ray runs them: the
space's GPU budget (`fashion_attention`: ResNet-18 small-input, batch 512, bf16, channels_last, data resident on the
GPU), the plain backbone. The k processes load their data and build their model, wait at a barrier, then train
together. A trial's rate is its training images per second over the epochs after the first (epoch 1 also pays
cudnn's autotuning, and torch.compile's compilation when asked); each epoch includes the validation pass, as in a
search. The combined rate of a packing is the sum of its trials' rates; its ratio is to one trial alone measured in
the same run. Variants (``--configs``, comma-separated ``NAME``s from CONFIGS): 1, 2, 4 or 8 processes; the same
under CUDA MPS (the control daemon is started for those and stopped after; skipped with the reason when it does
not start); torch.compile of the training forward (its compile time is reported, not hidden).

    python -m benchmarks.gpu_packing --device cuda                       # all variants (a few minutes on an H200)
    python -m benchmarks.gpu_packing --device cuda --configs p1,p4 --out packing.json
    python -m benchmarks.gpu_packing --quick                             # CPU smoke run (figures meaningless)

Prints one line per variant and the markdown block for BENCHMARKS.md; ``--out`` also keeps every figure as JSON
(rewritten after each variant, so a run cut short keeps what it measured).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import emit, header, table
from benchmarks._mps import MpsDaemon


@dataclasses.dataclass(frozen=True)
class Packing:
    """One variant: ``trials`` processes at once, under CUDA MPS or not, compiled or not."""

    trials: int
    mps: bool = False
    compile: bool = False


CONFIGS: dict[str, Packing] = {
    "p1": Packing(1), "p2": Packing(2), "p4": Packing(4), "p8": Packing(8),
    "mps2": Packing(2, mps=True), "mps4": Packing(4, mps=True), "mps8": Packing(8, mps=True),
    "c1": Packing(1, compile=True), "c4": Packing(4, compile=True),
}
DEFAULT_CONFIGS = "p1,p2,p4,p8,mps4,mps8,c1"


@dataclasses.dataclass(frozen=True)
class Job:
    """What one trial process trains (picklable: it crosses into a spawned process)."""

    device: str
    epochs: int
    batch_size: int
    train_size: int | None
    compile: bool
    threads: int
    data_root: str | None
    seed: int


def train_process(job: Job, barrier: Any, results: Any) -> None:
    """One trial in a spawned process: load, build, wait for the others, then `run_trial`; puts a dict on `results`."""
    import torch

    from spaces import load_space
    from trials import ProbeConfig, TrainConfig, load_dataset, run_trial
    from backbones import build

    torch.set_num_threads(job.threads)
    started = time.perf_counter()
    space = load_space("fashion_attention")
    budget = space.budgets["gpu"] if job.device == "cuda" else space.budgets["cpu"]
    data = load_dataset(space.dataset, root=job.data_root, train_size=job.train_size, val_size=budget.val_size,
                        seed=job.seed)
    arch = space.base_arch(backbone=budget.backbone, in_chans=data.in_chans, num_classes=data.num_classes,
                           backbone_kwargs=budget.backbone_kwargs)
    torch.manual_seed(job.seed)
    model = build(arch)
    train = TrainConfig(epochs=job.epochs, batch_size=job.batch_size, lr=budget.lr, weight_decay=budget.weight_decay,
                        compile=job.compile, seed=job.seed,
                        # on CUDA training is always bf16 + NHWC (trials.train); on a CPU smoke run plain fp32
                        precision="bf16" if job.device == "cuda" else "fp32", channels_last=job.device == "cuda")
    epochs: list[dict[str, float]] = []
    setup_s = time.perf_counter() - started
    barrier.wait()
    run_trial(model=model, data=data, train=train, probe=ProbeConfig(runs=3, warmup=1, batch=0), device=job.device,
              threads=job.threads, report=lambda result, _: epochs.append(dict(result.metrics)))
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if job.device == "cuda" else 0.0
    results.put({"setup_s": setup_s, "images": len(data.train_y) + len(data.val_y),
                 "train_images": len(data.train_y), "epoch_s": [e["epoch_s"] for e in epochs],
                 "val_acc": epochs[-1]["val_acc"], "peak_gb": peak_gb})


def run_packing(packing: Packing, *, job: Job) -> dict[str, Any]:
    """Train ``packing.trials`` processes at once; returns per-trial rates and the combined rate (images/s)."""
    context = multiprocessing.get_context("spawn")  # fresh CUDA contexts, as Ray's workers have
    barrier, results = context.Barrier(packing.trials), context.Queue()
    job = dataclasses.replace(job, compile=packing.compile,
                              threads=max(1, min(job.threads, (os.cpu_count() or 1) // packing.trials)))
    started = time.perf_counter()
    processes = [context.Process(target=train_process, args=(dataclasses.replace(job, seed=job.seed + i), barrier,
                                                             results)) for i in range(packing.trials)]
    for process in processes:
        process.start()
    trials = [results.get() for _ in processes]
    for process in processes:
        process.join()
    steady = [[t["train_images"] / s for s in t["epoch_s"][1:]] or [t["train_images"] / t["epoch_s"][0]]
              for t in trials]
    rates = [statistics.median(r) for r in steady]
    return {"trials": packing.trials, "mps": packing.mps, "compile": packing.compile,
            "combined_img_s": sum(rates), "per_trial_img_s": rates,
            "first_epoch_s": statistics.median(t["epoch_s"][0] for t in trials),
            "steady_epoch_s": statistics.median(s for t in trials for s in (t["epoch_s"][1:] or t["epoch_s"])),
            "setup_s": statistics.median(t["setup_s"] for t in trials),
            "wall_s": time.perf_counter() - started, "peak_gb": max(t["peak_gb"] for t in trials),
            "val_acc": statistics.median(t["val_acc"] for t in trials)}


def measure(names: Sequence[str], *, job: Job, out: Path | None = None,
            log: Any = print) -> dict[str, dict[str, Any]]:
    """Every variant in ``names`` in turn (MPS ones inside a started daemon); returns name -> figures (or
    ``{"skipped": reason}``), with ``ratio`` to ``p1`` where p1 was measured. ``out``: rewritten after each."""
    figures: dict[str, dict[str, Any]] = {}
    for name in names:
        packing = CONFIGS[name]
        with _mps(packing.mps, device=job.device) as mps_error:
            if mps_error:
                figures[name] = {"skipped": mps_error}
                log(f"{name}: skipped ({mps_error})")
                continue
            figures[name] = run_packing(packing, job=job)
        if "p1" in figures and "combined_img_s" in figures["p1"]:
            figures[name]["ratio"] = figures[name]["combined_img_s"] / figures["p1"]["combined_img_s"]
        log(line(name, figures[name]))
        if out is not None:
            out.write_text(json.dumps(figures, indent=1))
    return figures


@contextlib.contextmanager
def _mps(wanted: bool, *, device: str) -> Iterator[str | None]:
    """Yields None when the variant can run (MPS started if wanted), else the reason it cannot."""
    if not wanted:
        yield None
        return
    if device != "cuda":
        yield "CUDA MPS needs --device cuda"
        return
    daemon = MpsDaemon()
    error = daemon.start()
    try:
        yield error
    finally:
        daemon.stop()


def line(name: str, f: dict[str, Any]) -> str:
    """One variant as a line of text."""
    if "skipped" in f:
        return f"{name}: skipped ({f['skipped']})"
    ratio = f" = {f['ratio']:.2f}x one alone" if "ratio" in f else ""
    return (f"{name}: {f['trials']} trial(s){' under MPS' if f['mps'] else ''}{' compiled' if f['compile'] else ''}: "
            f"{f['combined_img_s']:,.0f} img/s together{ratio}; per trial "
            f"{', '.join(f'{r:,.0f}' for r in f['per_trial_img_s'])}; epoch 1 {f['first_epoch_s']:.1f} s, then "
            f"{f['steady_epoch_s']:.2f} s; setup {f['setup_s']:.1f} s; peak {f['peak_gb']:.2f} GB; "
            f"val_acc {f['val_acc']:.4f}")


def markdown(figures: dict[str, dict[str, Any]]) -> str:
    """The figures as a markdown table."""
    rows = []
    for name, f in figures.items():
        if "skipped" in f:
            rows.append([name, "", "", "", "", f"skipped: {f['skipped']}"])
            continue
        rows.append([name, f"{f['trials']}{' MPS' if f['mps'] else ''}{' compiled' if f['compile'] else ''}",
                     f"{f['combined_img_s']:,.0f}", f"{f.get('ratio', float('nan')):.2f}",
                     f"{f['first_epoch_s']:.1f} / {f['steady_epoch_s']:.2f}", f"{f['peak_gb']:.2f} GB"])
    return table(["variant", "trials at once", "images/s together", "x one alone", "epoch 1 / later epoch (s)",
                  "peak memory per trial"], rows)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) | cpu (smoke runs only)")
    p.add_argument("--configs", default=None, help=f"comma-separated of {', '.join(CONFIGS)} (default "
                                                   f"{DEFAULT_CONFIGS})")
    p.add_argument("--epochs", type=int, default=None, help="per trial (default 3: two steady epochs)")
    p.add_argument("--train-size", type=int, default=None, help="training images (default: the GPU budget's, all)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the GPU budget's (512)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per trial (the GPU budget's cpu_per_trial)")
    p.add_argument("--data-root", default=None, help="Fashion-MNIST folder (default: the usual places)")
    p.add_argument("--out", type=Path, default=None, help="also write the figures here as JSON")
    p.add_argument("--quick", action="store_true", help="tiny CPU smoke run: p1,p2 on 512 images, 2 epochs")
    args = p.parse_args(argv)
    if args.quick:
        args.device, args.configs = "cpu", args.configs or "p1,p2"
        args.epochs, args.train_size, args.batch_size = args.epochs or 2, args.train_size or 512, args.batch_size or 64
    names = (args.configs or DEFAULT_CONFIGS).split(",")
    if unknown := [n for n in names if n not in CONFIGS]:
        p.error(f"unknown config(s) {', '.join(unknown)}; valid: {', '.join(CONFIGS)}")
    from spaces import load_space

    budget = load_space("fashion_attention").budgets["gpu"]
    job = Job(device=args.device, epochs=args.epochs or 3, batch_size=args.batch_size or budget.batch_size,
              train_size=args.train_size, compile=False, threads=args.threads, data_root=args.data_root, seed=0)
    figures = measure(names, job=job, out=args.out)
    import torch

    emit("GPU packing: combined training throughput of k trials on one device",
         header(torch.device(args.device), argv, "benchmarks.gpu_packing"), markdown(figures))
    return figures


if __name__ == "__main__":
    main()
