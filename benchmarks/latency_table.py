"""How well does a latency table measured on the target predict whole architectures there? fashion_attention, CPU.

Issue 38, item 4, with this machine's CPU as the target (ONNX Runtime, ``--threads`` intra-op threads, batch 1). It
writes the bundle a user would copy to a device (``devices.write_bundle``: the CPU budget's backbone, every distinct
module of the space at its shape, ``--calibration`` + ``--held-out`` whole architectures drawn with seeds 0 and 1),
runs the bundle's own ``time_bundle.py`` on it ``--repeats`` times in a subprocess as the target would (only numpy
and onnxruntime), fits the predictor on the first table's calibration architectures and states its error on the
held-out ones: MAPE, the share within ±10% and Kendall's tau (goal: >= 90% within ±10%, tau >= 0.8). Beside it:
the uncorrected sum (backbone + modules), FLOPs as a ranking (HW-NAS-Bench, Li et al. 2021,
https://arxiv.org/abs/2103.10584: FLOPs rank real latency poorly), and the table measured again against itself
(the held-out architectures' second timing against their first): the noise floor any predictor is scored through.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from backbones import build
from benchmarks._common import emit, header, parser, setup, table
from devices import (Correction, LatencyPredictor, bundle_size_mb, held_out_error, fit, load_table, prediction_error,
                     write_bundle)
from devices.bundle import SCRIPT
from devices.target import ROUNDS, RUNS, WARMUP
from spaces import StageSpace, load_space
from trials.probe import count_flops_g

SPACE, BUDGET, IMAGE, CLASSES = "fashion_attention", "cpu", (1, 28, 28), 10


def _space(quick: bool):
    space = load_space(SPACE)
    if not quick:
        return space
    tiny = tuple(StageSpace(index=i, types=("none", "se"), reduction=(8,), kernel_size=(), position=("after_block",))
                 for i in (2, 3))
    return dataclasses.replace(space, stages=tiny, head=("avg",))


def _time_bundle(bundle: Path, out: Path, *, threads: int, runs: int, warmup: int) -> Path:
    """The bundle's own script in a fresh process, as on the target."""
    cmd = [sys.executable, str(bundle / SCRIPT), "--threads", str(threads), "--runs", str(runs), "--warmup",
           str(warmup), "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=bundle)
    return out


def _row(name: str, e) -> tuple:
    return (name, f"{e.mape:.1%}", f"{e.within_10:.0%}", f"{e.kendall_tau:.2f}", f"{e.max_error:.1%}")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--bundle", default=None, help="bundle folder: reused when it holds one, else written there "
                                                  "(default: a temporary folder)")
    p.add_argument("--calibration", type=int, default=None, help="whole architectures to fit on (default 30)")
    p.add_argument("--held-out", type=int, default=None, help="whole architectures to state the error on (default 30)")
    p.add_argument("--runs", type=int, default=None, help=f"timed passes per model on the target (default {RUNS})")
    args = p.parse_args(argv)
    device = setup(args)
    if device.type != "cpu":
        raise SystemExit("benchmarks.latency_table times on this machine's CPU (ONNX Runtime's CPU provider)")
    quick = args.quick
    calibration = args.calibration or (3 if quick else 30)
    held = args.held_out or (2 if quick else 30)
    runs, warmup, repeats = args.runs or (3 if quick else RUNS), 1 if quick else WARMUP, args.repeats or 2
    threads = args.threads or 1
    space = _space(quick)
    budget = space.budgets[BUDGET]
    base = space.base_arch(backbone=budget.backbone, in_chans=IMAGE[0], num_classes=CLASSES,
                           backbone_kwargs=budget.backbone_kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(args.bundle or Path(tmp) / "bundle")
        start = time.perf_counter()
        if not (bundle / "manifest.json").is_file():
            write_bundle(space, base=base, image=IMAGE, out=bundle, calibration=calibration, held_out=held,
                         log=print)
        export_s = time.perf_counter() - start
        size_mb = bundle_size_mb(bundle)
        manifest = json.loads((bundle / "manifest.json").read_text())
        start = time.perf_counter()
        tables = [load_table(_time_bundle(bundle, Path(tmp) / f"table{r}.json", threads=threads, runs=runs,
                                          warmup=warmup), space=space.name, base=base) for r in range(repeats)]
        timing_s = (time.perf_counter() - start) / repeats
    predictor = fit(tables[0])
    held_out = tables[0].by_role("held_out")
    measured = [m.ms for m in held_out]
    ours = held_out_error(predictor)
    raw = held_out_error(LatencyPredictor(table=tables[0], correction=Correction()))
    flops = [count_flops_g(build(m.arch), input_shape=IMAGE, device="cpu") for m in held_out]
    flops_error = prediction_error(flops, measured)  # only its tau means anything: FLOPs are not milliseconds
    rows = [_row(f"table + correction ({len(held_out)} held-out architectures)", ours),
            _row("table, uncorrected sum (backbone + modules)", raw),
            ("FLOPs (ranking only)", "–", "–", f"{flops_error.kendall_tau:.2f}", "–")]
    figures = {"mape": ours.mape, "within_10": ours.within_10, "kendall_tau": ours.kendall_tau,
               "max_error": ours.max_error, "uncorrected_mape": raw.mape, "uncorrected_within_10": raw.within_10,
               "flops_kendall_tau": flops_error.kendall_tau, "bundle_mb": size_mb, "timing_s": timing_s}
    if repeats > 1:
        again = {json.dumps(m.arch.to_dict(), sort_keys=True): m.ms for m in tables[1].by_role("held_out")}
        second = [again[json.dumps(m.arch.to_dict(), sort_keys=True)] for m in held_out]
        noise = prediction_error(second, measured)
        other = prediction_error([predictor.predict(m.arch) for m in held_out], second)
        rows += [_row("predictor vs the second timing (no shared moment)", other),
                 _row("second timing vs first (measurement noise)", noise)]
        figures.update(noise_within_10=noise.within_10, noise_kendall_tau=noise.kendall_tau,
                       other_within_10=other.within_10, other_kendall_tau=other.kendall_tau)
    c = predictor.correction
    t = tables[0]
    body = (f"Space `{space.name}`{' (quick: a 2-stage toy)' if quick else ''}, budget {BUDGET}: {base.backbone} "
            f"{dict(base.backbone_kwargs)}, {'x'.join(map(str, IMAGE))} input. Bundle `{manifest['bundle_id']}`: "
            f"{len(manifest['models'])} ONNX models ({sum(m['kind'] == 'module' for m in manifest['models'])} "
            f"modules), {size_mb:.1f} MB, written in {export_s:.0f} s (0 = reused); timed by `{SCRIPT}` in "
            f"{timing_s:.0f} s per pass, {repeats} passes, {runs} runs per model in {ROUNDS} rounds (each after "
            f"{warmup} warm-up passes), each paired with the reference backbone ({t.reference_ms:.3f} ms), "
            f"ONNX Runtime {t.device['onnxruntime']}, "
            f"{t.threads} thread(s), batch {t.batch}. Load average on the target during pass 1 (1/5/15 min): "
            f"start {_load(t, 'start')}, end {_load(t, 'end')}. Correction fitted on "
            f"{len(t.by_role('calibration'))} calibration architectures: {c.intercept_ms:+.3f} ms + {c.scale:.3f} x "
            f"(backbone + modules) {c.per_module_ms:+.4f} ms per module. Measured held-out latency "
            f"{min(measured):.3f}–{max(measured):.3f} ms.\n\n"
            + table(["predictor", "MAPE", "within ±10%", "Kendall tau", "worst"], rows))
    print(body)
    emit("Latency table on the target: predictor error (benchmarks.latency_table)",
         header(device, argv, "benchmarks.latency_table"), body)
    return {k: float(v) for k, v in figures.items()}


def _load(t, when: str) -> str:
    """The table's load averages at the start or end of timing, as text."""
    raw = t.load_average.get(when)
    return " / ".join(f"{x:.1f}" for x in raw) if raw else "unknown"


if __name__ == "__main__":
    main()
