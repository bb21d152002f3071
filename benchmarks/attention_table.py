"""Ground-truth table of attention placement: every architecture of a small space, trained for real, 2 seeds.

Issue 11. The space: the 4 stages of the CPU budget's backbone (``spaces/fashion_attention.yaml`` budgets.cpu: a
quarter-width resnet10t, small_input), each with one of {none, se (reduction 16), eca (kernel_size 3)} after every
block, head avg: 3**4 = 81 architectures. Each is trained through the real ``trials.run_trial`` on Fashion-MNIST
(a fixed, seeded train/val slice of the official train split; ``--data-seed``) once per seed (the seed sets the
weight init, the batch order and the augmentation), then scored on the whole official test split (10,000 images,
``load_dataset(..., test=True)``, ``evaluate(..., split="test")``). Training runs in ``--workers`` spawned
processes with 1 torch thread each; the trial's own latency probe is skipped there (1 pass, no warm-up), because
training workers compete for the cores. Latency is measured afterwards, once per architecture, **alone** (this
process, nothing else of the builder running, 1 thread), as the confirmation phase does: ``measure_latency`` with
``ProbeConfig()`` at batch 1 (10 warm-up passes, median of 30), with the plain backbone timed interleaved
(``latency_rel``).

Output: ``benchmarks/data/attention_table.csv`` (one row per architecture and seed; columns below, units in the
names) and ``benchmarks/data/attention_table.json`` (device, versions, date, budget, command). The builder resumes:
rows (arch, seed) already in the CSV are skipped, each finished row is appended and flushed at once, and the latency
phase fills only architectures whose latency is still empty (it rewrites the CSV, via a temporary file).

    python -m benchmarks.attention_table                      # the committed table (~45 min on 2 cores: 162 runs of ~30 s, 2 at once)
    python -m benchmarks.attention_table --archs 2 --out /tmp/t.csv --epochs 1 --train-size 256   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import itertools
import json
import multiprocessing
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
CSV_PATH = DATA_DIR / "attention_table.csv"
TYPES = ("none", "se", "eca")  # per stage, by default (--types); se with reduction 16, eca with kernel_size 3 (KNOBS)
# the fixed knobs of each type a table can hold (--types picks from these)
KNOBS = {"se": {"reduction": 16}, "eca": {"kernel_size": 3}, "cbam": {"reduction": 16, "kernel_size": 7},
         "coord": {"reduction": 16}, "gc": {"reduction": 8}, "nl": {"reduction": 8}}
NUM_STAGES = 4
BUDGET = "cpu"  # the budget of spaces/fashion_attention.yaml whose backbone the table trains
DEFAULTS = dict(epochs=2, train_size=1500, val_size=1000, batch_size=64, lr=0.05, seeds="0,1", workers=2)
EPOCH_COLUMNS = 10  # val_acc_e1 .. val_acc_e{epochs}: only as many as trained

# CSV columns (units in the names): the training row, then the latency columns the latency phase fills.
ARCH_COLUMNS = ["arch", "s0", "s1", "s2", "s3"]  # arch: "se-none-eca-none" (stage 0 first); sN: the stage's type
RUN_COLUMNS = ["seed", "epochs", "train_size", "val_size", "batch_size", "lr"]
LATENCY_COLUMNS = ["latency_ms", "latency_iqr_ms", "latency_rel"]  # batch 1, measured alone, median of 30


def columns(epochs: int) -> list[str]:
    return (ARCH_COLUMNS + RUN_COLUMNS + [f"val_acc_e{e}" for e in range(1, epochs + 1)]
            + ["val_acc", "test_acc", "train_loss", "params_m", "flops_g", "wall_s"] + LATENCY_COLUMNS)


def arch_key(types: Sequence[str]) -> str:
    return "-".join(types)


def table_space(types: Sequence[str] = TYPES):
    """The table's space as a ``SearchSpace`` (from ``spaces/fashion_attention.yaml``, narrowed): 4 stages ×
    ``types`` (default {none, se r16, eca k3}) with KNOBS' knobs, after_block, every block, head avg; controls: the
    plain backbone and SE r16 everywhere."""
    from backbones import StageConfig
    from spaces import Control, StageSpace, load_space

    space = load_space("fashion_attention")
    reductions = tuple(sorted({KNOBS[t]["reduction"] for t in types if "reduction" in KNOBS.get(t, {})})) or (16,)
    kernels = tuple(sorted({KNOBS[t]["kernel_size"] for t in types if "kernel_size" in KNOBS.get(t, {})})) or (3,)
    if len(reductions) > 1 or len(kernels) > 1:
        raise SystemExit(f"--types {','.join(types)}: the replayed space needs one reduction and one kernel size "
                         f"across its types (KNOBS); got reductions {reductions}, kernels {kernels}")
    stages = tuple(StageSpace(index=i, types=tuple(types), reduction=reductions, kernel_size=kernels,
                              position=("after_block",), blocks=("every",)) for i in range(NUM_STAGES))
    return dataclasses.replace(space, stages=stages, head=("avg",),
                               controls={"se_r16": Control(stage=StageConfig(attn="se", reduction=16))})


def base_arch():
    """The plain backbone of the CPU budget (quarter-width resnet10t, small_input, 1 channel, 10 classes)."""
    space = table_space()
    budget = space.budgets[BUDGET]
    return space.base_arch(backbone=budget.backbone, in_chans=1, num_classes=10,
                           backbone_kwargs=budget.backbone_kwargs)


def arch_of(types: Sequence[str]):
    """The ArchConfig of one table row: ``types[i]`` at stage i with the table's fixed knobs."""
    from backbones import StageConfig

    base = base_arch()
    stages = tuple(StageConfig() if kind == "none" else StageConfig(attn=kind, **KNOBS[kind]) for kind in types)
    return dataclasses.replace(base, stages=stages)


def all_types(types: Sequence[str] = TYPES, *, sample: int | None = None, seed: int = 0) -> list[tuple[str, ...]]:
    """Every architecture of the table's space (``types`` at each stage), or a seeded random ``sample`` of them
    that always holds the plain backbone and SE everywhere (the controls), in a fixed order."""
    every = list(itertools.product(types, repeat=NUM_STAGES))
    if sample is None or sample >= len(every):
        return every
    import random

    controls = [tuple(["none"] * NUM_STAGES)] + ([tuple(["se"] * NUM_STAGES)] if "se" in types else [])
    rest = [t for t in every if t not in controls]
    return controls + random.Random(seed).sample(rest, sample - len(controls))


# ---- training, in a worker process ---------------------------------------------------------------------------
_DATA = None


def _init_worker(data_kwargs: dict, threads: int) -> None:
    global _DATA
    import torch

    from trials import load_dataset

    torch.set_num_threads(threads)
    _DATA = load_dataset("fashion_mnist", test=True, **data_kwargs)


def train_one(job: dict) -> dict:
    """Train one (arch, seed) through ``trials.run_trial``; the CSV row (without latency)."""
    import torch

    from backbones import build
    from trials import ProbeConfig, TrainConfig, evaluate, run_trial

    types, seed = tuple(job["types"]), job["seed"]
    precision, channels_last = job.get("precision", "fp32"), job.get("channels_last", False)
    start = time.perf_counter()
    torch.manual_seed(seed)  # weight init (run_trial seeds again, for training)
    model = build(arch_of(types))
    epochs: list[float] = []
    result = run_trial(
        model=model, data=_DATA, device="cpu", threads=job["threads"],
        train=TrainConfig(epochs=job["epochs"], batch_size=job["batch_size"], lr=job["lr"], seed=seed,
                          ema=job.get("ema", 0.0), precision=precision, channels_last=channels_last),
        probe=ProbeConfig(runs=1, warmup=0, batch=0),  # latency is measured alone afterwards (the latency phase)
        report=lambda r, _m: epochs.append(r.metrics["val_acc"]))
    test_acc = evaluate(model, _DATA, device=torch.device("cpu"), split="test", precision=precision)
    row = {"arch": arch_key(types), **{f"s{i}": t for i, t in enumerate(types)}, "seed": seed,
           **{k: job[k] for k in ("epochs", "train_size", "val_size", "batch_size", "lr")},
           **{f"val_acc_e{e}": f"{v:.4f}" for e, v in enumerate(epochs, 1)},
           "val_acc": f"{result.metrics['val_acc']:.4f}", "test_acc": f"{test_acc:.4f}",
           "train_loss": f"{result.metrics['train_loss']:.4f}", "params_m": f"{result.metrics['params_m']:.5f}",
           "flops_g": f"{result.metrics['flops_g']:.5f}", "wall_s": f"{time.perf_counter() - start:.1f}"}
    return row


# ---- the CSV -----------------------------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def measure_latencies(path: Path, *, epochs: int) -> int:
    """Fill latency_ms / latency_iqr_ms / latency_rel of every architecture that lacks them, measured alone in this
    process at 1 thread (``ProbeConfig()`` at batch 1, plain backbone interleaved); rewrites the CSV. Returns how
    many architectures it measured."""
    import torch

    from backbones import build
    from trials import ProbeConfig, measure_latency

    torch.set_num_threads(1)
    rows = read_rows(path)
    # an arch measured before (rows of other seeds appended after a latency phase) keeps its one measurement
    measured = {r["arch"]: {k: r[k] for k in LATENCY_COLUMNS} for r in rows if r.get("latency_ms")}
    todo = sorted({r["arch"] for r in rows if not r.get("latency_ms")} - set(measured))
    if not todo and all(r.get("latency_ms") for r in rows):
        return 0
    torch.manual_seed(0)
    reference = build(base_arch())
    for key in todo:
        model = build(arch_of(key.split("-")))
        m = measure_latency(model, ProbeConfig(), input_shape=(1, 28, 28), device="cpu", reference=reference)
        measured[key] = {"latency_ms": f"{m['latency_ms']:.4f}", "latency_iqr_ms": f"{m['latency_iqr_ms']:.4f}",
                         "latency_rel": f"{m['latency_rel']:.4f}"}
        print(f"latency {key}: {m['latency_ms']:.3f} ms (rel {m['latency_rel']:.3f})", flush=True)
    for row in rows:
        row.update(measured.get(row["arch"], {}))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(epochs))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return len(todo)


def environment(args: argparse.Namespace, argv: Sequence[str] | None) -> dict:
    import numpy
    import timm
    import torch

    from trials import device_info

    info = device_info(torch.device("cpu"))
    return {
        "command": "python -m benchmarks.attention_table"
                   + "".join(" " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "device": f"{info['device_name']} (cpu, {os.cpu_count()} logical CPUs)", "platform": platform.platform(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
                     "numpy": numpy.__version__},
        "space": {"stages": NUM_STAGES, "types": args.types.split(","),
                  "knobs": {t: KNOBS[t] for t in args.types.split(",") if t in KNOBS}, "position": "after_block",
                  "blocks": "every", "head": "avg", "archs": len(args.types.split(",")) ** NUM_STAGES,
                  "sample": args.sample, "sample_seed": args.sample_seed},
        "backbone": base_arch().to_dict(),
        "budget": {"dataset": "fashion_mnist", "train_size": args.train_size, "val_size": args.val_size,
                   "data_seed": args.data_seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                   "ema": args.ema, "precision": args.precision,
                   "weight_decay": "TrainConfig default", "seeds": [int(s) for s in args.seeds.split(",")],
                   "threads_per_run": 1, "workers": args.workers,
                   "test_split": "official Fashion-MNIST test split, 10,000 images"},
        "latency": {"probe": dataclasses.asdict(__import__("trials").ProbeConfig()), "batch": 1, "threads": 1,
                    "reference": "plain backbone, timed interleaved (latency_rel)",
                    "when": "after all training, alone in one process"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Train what the CSV lacks, then measure the latencies; returns how many rows the CSV has."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=CSV_PATH, help=f"the CSV (default {CSV_PATH}); JSON beside it")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--train-size", type=int, default=DEFAULTS["train_size"])
    p.add_argument("--val-size", type=int, default=DEFAULTS["val_size"])
    p.add_argument("--data-seed", type=int, default=0, help="seed of the train/val slice (the same for every run)")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--seeds", default=DEFAULTS["seeds"], help="training seeds, comma-separated (default 0,1)")
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"], help="training processes, 1 thread each (0: in this process, for tests)")
    p.add_argument("--archs", type=int, default=None, help="only the first N architectures (smoke runs)")
    p.add_argument("--types", default=",".join(TYPES), help=f"types per stage, from none,{','.join(KNOBS)} "
                                                            f"(default {','.join(TYPES)})")
    p.add_argument("--sample", type=int, default=None, help="a seeded random sample of this many architectures "
                                                            "(with the plain backbone and SE everywhere)")
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--ema", type=float, default=0.0, help="TrainConfig.ema: evaluate a weight average (0 = off)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="training arithmetic (bf16: autocast + channels_last; the proxy check showed parity)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency phase")
    p.add_argument("--latency-only", action="store_true",
                   help="train nothing: only measure the latency of archs in the CSV that lack it (a stopped table)")
    args = p.parse_args(argv)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta_path = args.out.with_suffix(".json")
    meta = environment(args, argv)
    meta["invocations"] = [meta["command"]]
    if meta_path.exists():  # a resumed table keeps its first start date and command; later ones are listed
        old = json.loads(meta_path.read_text())
        meta["started"], meta["command"] = old.get("started"), old.get("command", meta["command"])
        meta["invocations"] = old.get("invocations", [meta["command"]]) + meta["invocations"]
        if "measured" in old.get("latency", {}):
            meta["latency"] = old["latency"]
    meta.setdefault("started", None)
    meta["started"] = meta["started"] or datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    done = {(r["arch"], int(r["seed"])) for r in read_rows(args.out)}
    unknown = [t for t in args.types.split(",") if t != "none" and t not in KNOBS]
    if unknown:
        raise SystemExit(f"--types: unknown {','.join(unknown)}; valid: none,{','.join(KNOBS)}")
    types_list = all_types(args.types.split(","), sample=args.sample, seed=args.sample_seed)[: args.archs]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [{"types": t, "seed": s, "epochs": args.epochs, "train_size": args.train_size, "val_size": args.val_size,
             "batch_size": args.batch_size, "lr": args.lr, "threads": 1, "ema": args.ema,
             "precision": args.precision, "channels_last": args.precision == "bf16"}
            for s in seeds for t in types_list if (arch_key(t), s) not in done  # seed 0 of every arch first
            and not args.latency_only]
    print(f"{len(done)} rows already in {args.out}; {len(jobs)} to train", flush=True)
    if jobs:
        new = not args.out.exists() or args.out.stat().st_size == 0
        data_kwargs = {"train_size": args.train_size, "val_size": args.val_size, "seed": args.data_seed}
        start = time.perf_counter()
        with args.out.open("a", newline="") as f, contextlib.ExitStack() as stack:
            if args.workers > 0:
                pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(
                    args.workers, initializer=_init_worker, initargs=(data_kwargs, 1)))
                finished = pool.imap_unordered(train_one, jobs)
            else:  # in this process (tests): one at a time
                _init_worker(data_kwargs, 1)
                finished = map(train_one, jobs)
            writer = csv.DictWriter(f, fieldnames=columns(args.epochs))
            if new:
                writer.writeheader()
            for i, row in enumerate(finished, 1):
                writer.writerow(row)
                f.flush()
                os.fsync(f.fileno())
                print(f"[{i}/{len(jobs)} {time.perf_counter() - start:.0f}s] {row['arch']} seed {row['seed']}: "
                      f"val {row['val_acc']} test {row['test_acc']} ({row['wall_s']} s)", flush=True)
    if not args.no_latency:
        load = os.getloadavg()
        measured = measure_latencies(args.out, epochs=args.epochs)
        if measured:
            meta["latency"]["measured"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            meta["latency"]["load_average_before"] = [round(x, 2) for x in load]
    rows = read_rows(args.out)
    meta["rows"] = len(rows)
    meta["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{len(rows)} rows in {args.out}", flush=True)
    return len(rows)


if __name__ == "__main__":
    main()
