"""Time a latency bundle on the target device; needs only Python 3.8+, numpy and onnxruntime (not attnas, not torch).

Copied into every bundle as ``time_bundle.py`` (``python -m devices bundle`` writes it); run it there:

    python time_bundle.py --threads 1 --out latency_table.json

It reads ``manifest.json`` and ``models.zip`` beside itself, times every ONNX model in it and writes the latency
table (JSON) to bring back. Each model gets ``--runs`` timed passes, split over ``--rounds`` rounds through all
models (each round in its own seeded shuffled order, each model's share after ``--warmup`` untimed passes), so a
burst of other load or slow drift hits one round of each model rather than all of one kind. Each timed pass is
followed by one pass of the reference model (the plain backbone) under the same conditions, as
``trials.measure_latency`` does with ``reference=``: a row's ``rel`` (its median / the reference's median over the
passes interleaved with it) repeats far better than milliseconds on a machine whose speed drifts (BENCHMARKS.md,
section 3). Times are wall-clock (``time.perf_counter``) around ``session.run``, in ms; spread is the IQR.
Exit code 2 with one ``error:`` line when the bundle is incomplete or an option is invalid.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sys
import time
import zipfile
from pathlib import Path

FORMAT = "attnas-latency-table/1"  # the table's format tag; devices.table reads this version
BUNDLE_FORMAT = "attnas-latency-bundle/1"
HERE = Path(__file__).resolve().parent
WARMUP = 10  # untimed passes per model (ONNX Runtime allocates and picks kernels on the first passes)
# Timed passes per model. On a shared 2-core CPU, 50 passes left the held-out architectures' ranking at Kendall tau
# 0.68-0.77 from one timing to the next; 200 brought it to 0.83 (BENCHMARKS.md, section 17).
RUNS = 200
ROUNDS = 4  # the runs are split over this many rounds through all models, each in its own shuffled order


def _session(model: bytes, *, threads: int, providers: list[str]):
    """An ONNX Runtime session as ``trials.runtime.onnx_session`` makes it (``threads`` intra-op threads, one
    inter-op thread), with the providers asked for. A copy, not an import: the target has no attnas."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=providers)


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    """25th, 50th and 75th percentiles (linear interpolation, numpy's default)."""
    import numpy as np

    q = np.percentile(np.asarray(values), [25, 50, 75])
    return float(q[0]), float(q[1]), float(q[2])


def _time(session, feed, reference, ref_feed, *, warmup: int, runs: int) -> tuple[list[float], list[float]]:
    """``runs`` wall times (ms) of ``session``, each followed by one of ``reference``, after ``warmup`` of each."""
    for _ in range(warmup):
        session.run(None, feed)
        reference.run(None, ref_feed)
    own, ref = [], []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        own.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        reference.run(None, ref_feed)
        ref.append((time.perf_counter() - start) * 1e3)
    return own, ref


def device_facts() -> dict:
    """What the table was measured on: CPU model (where the OS says), machine, OS, Python and library versions."""
    import numpy as np
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "machine": platform.machine(), "system": platform.platform(), "logical_cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "onnxruntime": ort.__version__}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # not on Windows
        return None


def measure(bundle: Path, *, threads: int, batch: int, warmup: int, runs: int, rounds: int, providers: list[str],
            seed: int = 0, log=print) -> dict:
    """The latency table of ``bundle`` (a folder with manifest.json and models.zip) as a JSON-able dict: ``runs``
    timed passes per model, split over ``rounds`` rounds through all models (each round after ``warmup``)."""
    import numpy as np

    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{bundle / 'manifest.json'} is not a latency bundle manifest ({BUNDLE_FORMAT})")
    entries = manifest["models"]
    rng = np.random.default_rng(seed)
    load_start = _load()
    with zipfile.ZipFile(bundle / "models.zip") as models:
        missing = sorted({e["file"] for e in entries} - set(models.namelist()))
        if missing:
            raise ValueError(f"models.zip lacks {len(missing)} model(s), first {missing[0]}: copy the whole bundle")
        ref_entry = next(e for e in entries if e["name"] == manifest["reference"])
        reference = _session(models.read(ref_entry["file"]), threads=threads, providers=providers)
        ref_feed = {reference.get_inputs()[0].name: rng.standard_normal((batch, *ref_entry["input"]), np.float32)}
        own: list[list[float]] = [[] for _ in entries]
        ref: list[list[float]] = [[] for _ in entries]
        per_round = max(1, runs // rounds)
        for r in range(rounds):  # every model in each round, in a new order: a burst of load hits one round of each
            order = list(range(len(entries)))
            random.Random(seed * 1000 + r).shuffle(order)
            for i in order:
                entry = entries[i]
                session = _session(models.read(entry["file"]), threads=threads, providers=providers)
                feed = {session.get_inputs()[0].name: rng.standard_normal((batch, *entry["input"]), np.float32)}
                times, ref_times = _time(session, feed, reference, ref_feed, warmup=warmup, runs=per_round)
                own[i] += times
                ref[i] += ref_times
            log(f"  round {r + 1}/{rounds}: {len(entries)} models timed", flush=True)
    rows = []
    for entry, times, ref_times in zip(entries, own, ref):
        q1, median, q3 = _quantiles(times)
        ref_median = _quantiles(ref_times)[1]
        rows.append({**{k: v for k, v in entry.items() if k != "file"}, "median_ms": median, "iqr_ms": q3 - q1,
                     "ref_median_ms": ref_median, "rel": median / ref_median})
    all_ref = [r["ref_median_ms"] for r in rows]
    return {"format": FORMAT, "bundle_id": manifest["bundle_id"], "space": manifest["space"],
            "base": manifest["base"], "image": manifest["image"], "reference": manifest["reference"],
            "reference_ms": _quantiles(all_ref)[1], "batch": batch, "threads": threads, "warmup": warmup,
            "runs": runs, "rounds": rounds, "providers": providers, "device": device_facts(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "load_average": {"start": load_start, "end": _load()}, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Time this latency bundle here; write the table to bring back.")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    p.add_argument("--batch", type=int, default=1, help="images per pass (default 1: latency_ms)")
    p.add_argument("--warmup", type=int, default=WARMUP, help=f"untimed passes per model (default {WARMUP})")
    p.add_argument("--runs", type=int, default=RUNS,
                   help=f"timed passes per model; the median is kept (default {RUNS})")
    p.add_argument("--rounds", type=int, default=ROUNDS,
                   help=f"rounds through all models that share the runs (default {ROUNDS})")
    p.add_argument("--providers", default="CPUExecutionProvider",
                   help="ONNX Runtime execution providers, comma-separated, in priority order (default CPU)")
    p.add_argument("--bundle", default=str(HERE), help="the bundle folder (default: this script's)")
    p.add_argument("--out", default="latency_table.json",
                   help="where to write the table (default ./latency_table.json)")
    args = p.parse_args(argv)
    try:
        for name in ("threads", "batch", "runs", "rounds"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name}={getattr(args, name)} must be >= 1")
        if args.warmup < 0:
            raise ValueError(f"--warmup={args.warmup} must be >= 0")
        bundle = Path(args.bundle)
        for part in ("manifest.json", "models.zip"):
            if not (bundle / part).is_file():
                raise ValueError(f"{bundle / part} is missing: copy the whole bundle folder")
        providers = [x.strip() for x in args.providers.split(",") if x.strip()]
        import onnxruntime as ort

        if unknown := [x for x in providers if x not in ort.get_available_providers()]:
            raise ValueError(f"provider(s) {unknown} not in this onnxruntime; available: "
                             f"{', '.join(ort.get_available_providers())}")
        table = measure(bundle, threads=args.threads, batch=args.batch, warmup=args.warmup, runs=args.runs,
                        rounds=args.rounds, providers=providers)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        print(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(table, indent=1))
    print(f"wrote {args.out}: {len(table['rows'])} models, reference {table['reference']} "
          f"{table['reference_ms']:.3f} ms; bring this file back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
