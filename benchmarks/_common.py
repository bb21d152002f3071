"""What every benchmark shares: arguments, the environment header, side-by-side timing, markdown output."""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from trials import device_info, resolve_device

_CPU_THREADS = 1  # default torch threads on CPU: the CPU budget's cpu_per_trial, so figures match a trial's setting


def parser(description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the options every benchmark takes (--device, --threads, --repeats, --quick)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"torch intra-op threads (default: {_CPU_THREADS} on CPU, torch's default on CUDA)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per variant, alternated A B A B … (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: a smoke run of a few seconds (figures meaningless)")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Resolve the device, pin the thread count, seed torch; returns the device."""
    device = resolve_device(args.device)
    threads = args.threads if args.threads is not None else (_CPU_THREADS if device.type == "cpu" else None)
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes everywhere, as in trials
    return device


def header(device: torch.device, argv: Sequence[str] | None, module: str) -> str:
    """Markdown lines: the exact command, then device, versions, threads, date and the machine's load."""
    info = device_info(device)
    args = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    versions = f"torch {info['torch_version']}" + (f", CUDA {info['cuda_version']}" if "cuda_version" in info else "")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"Command: `python -m {module}{' ' + args if args else ''}`  \n"
        f"Device: {info['device_name']} ({device.type}, {os.cpu_count()} logical CPUs); {versions}; "
        f"threads {info['threads']}  \n"
        f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; "
        f"load average at the end (1/5/15 min): {load}"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Rates:
    """Per variant, the rate of every timed round in items per second."""

    wall: dict[str, list[float]]  # by wall-clock time (CUDA synchronised): the figure to quote
    cpu: dict[str, list[float]]  # by this process's CPU time (all its threads, not DataLoader workers): on a shared,
    # oversubscribed CPU this is less disturbed by other load; meaningless on CUDA (the host mostly waits)

    def paired_ratio(self, a: str, b: str) -> float:
        """Median over rounds of wall rate a / wall rate b (each round's a and b ran back to back)."""
        return statistics.median(x / y for x, y in zip(self.wall[a], self.wall[b]))


def alternate(
    variants: dict[str, Callable[[], int]], *, repeats: int, device: torch.device, warmup: int = 1
) -> Rates:
    """Time each variant side by side: `warmup` untimed calls each, then `repeats` rounds A B A B ….

    Each callable does one unit of work and returns how many items (images, batches) it processed.
    """
    for _ in range(warmup):
        for run in variants.values():
            run()
    rates = Rates(wall={name: [] for name in variants}, cpu={name: [] for name in variants})
    for _ in range(repeats):
        for name, run in variants.items():
            sync(device)
            wall, cpu = time.perf_counter(), time.process_time()
            items = run()
            sync(device)
            rates.wall[name].append(items / (time.perf_counter() - wall))
            rates.cpu[name].append(items / max(time.process_time() - cpu, 1e-9))
    return rates


def summary(rates: list[float]) -> str:
    """'median (min–max)' of a list of rates, rounded for a table."""
    return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(title: str, head: str, body: str) -> None:
    """Print the markdown block to paste into BENCHMARKS.md."""
    rule = "-" * 38
    print(f"\n----- markdown for BENCHMARKS.md -----\n### {title}\n\n{head}\n\n{body}\n{rule}")


def fill_defaults(args: argparse.Namespace, *, device: torch.device, defaults: dict[str, dict], quick: dict) -> None:
    """Set every option left at None from `quick` (with --quick) or from `defaults[device.type]`, in place."""
    chosen = {**defaults[device.type], **quick} if args.quick else defaults[device.type]
    for key, value in chosen.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``; ties get their average rank); nan when one side is
    constant."""
    from scipy import stats

    if len(set(a)) == 1 or len(set(b)) == 1:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)
