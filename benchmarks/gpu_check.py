"""The prepared GPU check: a short full search on CUDA, end to end, then the packing figures, every figure written.

One command for a lent GPU machine, run within a fixed time (``--budget-s``):

1. the environment (GPU, driver, versions, date) -> ``env.json``;
2. packing baseline: one trial alone and four at once (``benchmarks.gpu_packing`` p1, p4) -> ``packing.json``;
3. the real search, as a user runs it: ``python -m search.run space=fashion_attention device=cuda`` (Ray Tune,
   Optuna, ASHA, MLflow in SQLite, confirmation on the test split), sized by ``--trials``/``--epochs``/
   ``--confirm-epochs`` to fit, with ``budget.gpu_per_trial`` from step 2's faster packing; its output ->
   ``search.log``; from its MLflow store: wall time to the confirmed answer, the verdict, the phases' throughput and
   the default GPU search (``--project-trials`` trials + confirmation) projected from them -> ``search.json``;
4. the other packings (2 and 8 at once, under CUDA MPS, torch.compile) while time is left -> ``packing.json``;
5. ``gpu_check.md``: everything above as markdown for BENCHMARKS.md (rewritten after every step, so a run cut
   short keeps what it measured).

The GPU machine lent to this project has torch, timm, torchvision, numpy, pandas and onnxruntime but no Ray, Optuna,
MLflow or Hydra and no network: ``benchmarks.gpu_bundle`` packs those as one archive to carry (its docstring says
how to unpack it there), and Fashion-MNIST is carried as its four ``.gz`` files (``--data-root``).

    python -m benchmarks.gpu_check --out /tmp/gpu --data-root /tmp/fashion-mnist          # on the GPU machine
    python -m benchmarks.gpu_check --out /tmp/gpu-dry --quick                              # CPU dry run (minutes)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import gpu_packing

_VERSIONS = ("torch", "torchvision", "timm", "ray", "optuna", "mlflow", "mlflow-skinny", "hydra-core", "numpy",
             "onnxruntime")
_BASELINE = ("p1", "p4")
_LATER = ("p2", "p8", "mps4", "mps8", "c1")
# seconds a later packing variant needs at most (process start, cudnn tuning, 3 epochs; compile adds its own)
_VARIANT_S = {"p2": 35, "p8": 60, "mps4": 50, "mps8": 70, "c1": 120}
_REPORT_RESERVE_S = 20  # kept back from the search's time for reading its store and writing the report


def environment() -> dict[str, Any]:
    """GPU, driver, versions and date of this run."""
    import torch

    gpu = {}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 1e9, 1),
               "multiprocessors": props.multi_processor_count, "cuda": torch.version.cuda}
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        gpu["driver"] = smi.stdout.strip() if smi.returncode == 0 else "?"
    versions = {}
    for name in _VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": os.cpu_count(), "python": platform.python_version(), **gpu, "versions": versions}


def search_command(*, name: str, work: Path, device: str, trials: int, epochs: int, confirm_epochs: int,
                   gpu_per_trial: float, data_root: str | None, train_size: int | None,
                   seeds: int) -> list[str]:
    """The search as a user types it, sized for the check."""
    args = [f"space=fashion_attention", f"device={device}", f"name={name}", f"budget.trials={trials}",
            f"budget.epochs={epochs}", f"budget.confirm_epochs={confirm_epochs}", f"confirm.seeds={seeds}",
            f"confirm.max_seeds={seeds}", "confirm.top_k=1", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            f"storage={work / 'runs'}", "mlflow.experiment=gpu-check"]
    if device == "cuda":
        args.append(f"budget.gpu_per_trial={gpu_per_trial:g}")
    if train_size is not None:
        args += [f"budget.train_size={train_size}", f"budget.confirm_train_size={train_size}", "budget.val_size=500",
                 "data.test_size=1000"]
    if data_root:
        args.append(f"data.root={data_root}")
    return [sys.executable, "-m", "search.run", *args]


def run_search(command: list[str], *, log: Path, timeout_s: float) -> dict[str, Any]:
    """Run the search command, its output teed to ``log``; returns exit code and wall time."""
    started = time.monotonic()
    print("$ " + " ".join(shlex.quote(c) for c in command[1:]), flush=True)
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert process.stdout is not None
        try:
            for text in process.stdout:
                sink.write(text)
                sink.flush()
                print("  | " + text, end="", flush=True)
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError
            code = process.wait()
        except TimeoutError:
            process.kill()
            code = -9
            sink.write(f"\n[gpu_check] killed after {timeout_s:.0f} s\n")
    return {"exit_code": code, "wall_s": time.monotonic() - started}


def read_search(*, tracking_uri: str, name: str) -> dict[str, Any]:
    """The search's figures from its MLflow store: verdict, confirmed table, phase walls and epoch throughput."""
    import mlflow

    from search.outcomes import (CONFIRM_ROLE, CONFIRMED_CSV, EPOCHS_RUN_TAG, ROLE_TAG, SEARCH_ROLE, TRIAL_ROLE,
                                 VERDICT_TAG)

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("gpu-check")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parent = next(r for r in runs if r.data.tags.get(ROLE_TAG) == SEARCH_ROLE and r.info.run_name == name)
    figures: dict[str, Any] = {"verdict": parent.data.tags.get(VERDICT_TAG, ""),
                               "wall_s": parent.data.metrics.get("wall_s"),
                               "params": {k: v for k, v in parent.data.params.items()
                                          if k.startswith(("budget.", "confirm.", "concurrency", "train."))}}
    for role, key in ((TRIAL_ROLE, "search"), (CONFIRM_ROLE, "confirmation")):
        children = [r for r in runs if r.data.tags.get(ROLE_TAG) == role
                    and r.data.tags.get("mlflow.parentRunId") == parent.info.run_id and r.info.end_time]
        if not children:
            continue
        epochs = sum(int(r.data.tags.get(EPOCHS_RUN_TAG, 0)) for r in children)
        start = min(r.info.start_time for r in children) / 1000
        end = max(r.info.end_time for r in children) / 1000
        figures[key] = {"runs": len(children), "epochs_trained": epochs, "wall_s": end - start,
                        "epochs_per_s": epochs / max(end - start, 1e-9),
                        "run_s_median": statistics.median((r.info.end_time - r.info.start_time) / 1000
                                                          for r in children)}
    csv_path = client.download_artifacts(parent.info.run_id, f"confirmation/{CONFIRMED_CSV}")
    figures["confirmed_csv"] = Path(csv_path).read_text()
    return figures


def projection(figures: dict[str, Any], *, trials: int, controls: int, epochs: int, confirm_runs: int,
               confirm_epochs: int) -> dict[str, float] | None:
    """The default GPU search's wall time from this run's throughput: trial-epochs at the search's measured rate
    (with ASHA keeping the share of epochs it kept here), confirmation epochs at the confirmation's, plus this run's
    fixed cost (start, calibration, reports: wall minus the two phases)."""
    search, confirm = figures.get("search"), figures.get("confirmation")
    if not search or not confirm or figures.get("wall_s") is None:
        return None
    runs_here = search["runs"]
    planned_here = runs_here * float(figures["params"].get("budget.epochs", epochs))
    kept = search["epochs_trained"] / planned_here
    search_s = (trials + controls) * epochs * kept / search["epochs_per_s"]
    confirm_s = confirm_runs * confirm_epochs / confirm["epochs_per_s"]
    fixed_s = figures["wall_s"] - search["wall_s"] - confirm["wall_s"]
    return {"asha_kept": kept, "search_s": search_s, "confirm_s": confirm_s, "fixed_s": fixed_s,
            "total_min": (search_s + confirm_s + fixed_s) / 60}


def markdown(record: dict[str, Any]) -> str:
    """The whole record as markdown."""
    env = record.get("env", {})
    lines = ["## GPU check", "",
             f"Command: `python -m benchmarks.gpu_check {record.get('argv', '')}`  ",
             f"Device: {env.get('gpu', 'no GPU')} ({env.get('gpu_memory_gb', '?')} GB, driver {env.get('driver', '?')},"
             f" CUDA {env.get('cuda', '?')}), {env.get('cpus')} CPUs; Python {env.get('python')}; "
             + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()) + "  ",
             f"Date: {env.get('date', '?')}", ""]
    if packing := record.get("packing"):
        lines += ["### Packing (combined training images/s, one GPU)", "", gpu_packing.markdown(packing), ""]
    if search := record.get("search"):
        lines += ["### The search, end to end", "", "`" + search.get("command", "") + "`", "",
                  f"Exit code {search.get('exit_code')}, wall {search.get('wall_s', 0):.0f} s "
                  f"(to the confirmed answer, "
                  f"as the search measured it: {search.get('figures', {}).get('wall_s') or 0:.0f} s)", ""]
        figures = search.get("figures", {})
        for key in ("search", "confirmation"):
            if phase := figures.get(key):
                lines.append(f"- {key}: {phase['runs']} runs, {phase['epochs_trained']} epochs in {phase['wall_s']:.0f}"
                             f" s = {phase['epochs_per_s']:.3f} epochs/s; median run {phase['run_s_median']:.0f} s")
        if figures.get("verdict"):
            lines += ["", f"Verdict: {figures['verdict']}", "", "```", figures.get("confirmed_csv", "").strip(), "```"]
        if proj := search.get("projection"):
            lines += ["", f"Projected default GPU search ({proj['assumption']}): search "
                          f"{proj['search_s'] / 60:.1f} min (ASHA kept {100 * proj['asha_kept']:.0f}% of epochs "
                          f"here), confirmation "
                          f"{proj['confirm_s'] / 60:.1f} min, fixed {proj['fixed_s'] / 60:.1f} min: "
                          f"**{proj['total_min']:.1f} min**"]
        if search.get("error"):
            lines += ["", f"Reading the search's store failed: {search['error']}"]
    if skipped := record.get("skipped"):
        lines += ["", "Not run for lack of time: " + ", ".join(skipped)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for every figure (created)")
    p.add_argument("--work", type=Path, default=None, help="the search's stores and checkpoints (default OUT/work; "
                                                           "its mlflow.db is copied to OUT at the end)")
    p.add_argument("--budget-s", type=float, default=540, help="stop starting new work after this many seconds")
    p.add_argument("--data-root", default=None, help="Fashion-MNIST folder (default: the usual places)")
    p.add_argument("--trials", type=int, default=8, help="searched trials besides the controls")
    p.add_argument("--epochs", type=int, default=6, help="epochs of a search trial")
    p.add_argument("--confirm-epochs", type=int, default=8, help="epochs of a confirmation run")
    p.add_argument("--seeds", type=int, default=3, help="confirmation seeds (first look = cap)")
    p.add_argument("--search-s", type=float, default=330, help="the most the search may take")
    p.add_argument("--project-trials", type=int, default=64, help="the default search to project to")
    p.add_argument("--skip-search", action="store_true", help="packing figures only")
    p.add_argument("--quick", action="store_true", help="CPU dry run with tiny sizes (figures meaningless)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or out / "work"
    device = "cpu" if args.quick else "cuda"
    record: dict[str, Any] = {"argv": " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
                              "env": environment(), "skipped": []}

    def save() -> None:
        (out / "gpu_check.json").write_text(json.dumps(record, indent=1, default=str))
        (out / "gpu_check.md").write_text(markdown(record))

    save()
    print(json.dumps(record["env"]), flush=True)
    job = gpu_packing.Job(device=device, epochs=2 if args.quick else 3, batch_size=64 if args.quick else 512,
                          train_size=512 if args.quick else None, compile=False, threads=2,
                          data_root=args.data_root, seed=0)
    packing_json = out / "packing.json"
    record["packing"] = gpu_packing.measure(_BASELINE[:1] if args.quick else _BASELINE, job=job, out=packing_json)
    save()
    best = max((f for f in record["packing"].values() if "combined_img_s" in f), key=lambda f: f["combined_img_s"])
    if not args.skip_search:
        from spaces import load_space

        space = load_space("fashion_attention")
        controls = len(space.control_archs(base=space.base_arch(backbone="resnet18", in_chans=1, num_classes=10)))
        name = "gpu-check"
        command = search_command(name=name, work=work, device=device, trials=2 if args.quick else args.trials,
                                 epochs=1 if args.quick else args.epochs,
                                 confirm_epochs=1 if args.quick else args.confirm_epochs,
                                 gpu_per_trial=1 / best["trials"], data_root=args.data_root,
                                 train_size=512 if args.quick else None, seeds=2 if args.quick else args.seeds)
        work.mkdir(parents=True, exist_ok=True)
        stretch = 4 if args.quick else 1  # a CPU dry run is slower than the GPU it stands in for
        timeout = stretch * min(args.search_s, args.budget_s - (time.monotonic() - t0) - _REPORT_RESERVE_S)
        search = {"command": "python " + " ".join(shlex.quote(c) for c in command[1:]),
                  **run_search(command, log=out / "search.log", timeout_s=timeout)}
        record["search"] = search
        save()
        try:
            figures = read_search(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", name=name)
            search["figures"] = figures
            gpu = space.budgets["gpu"]
            confirm_runs = (controls + 3) * 3  # the GPU defaults: top_k 3 besides the controls, 3 seeds first
            proj = projection(figures, trials=args.project_trials, controls=controls, epochs=gpu.epochs,
                              confirm_runs=confirm_runs, confirm_epochs=gpu.confirm.epochs)
            if proj is not None:
                search["projection"] = {**proj, "assumption": f"{args.project_trials} trials + {controls} controls "
                                        f"at {gpu.epochs} epochs, {confirm_runs} confirmation runs at "
                                        f"{gpu.confirm.epochs} epochs, this run's packing"}
        except Exception as exc:  # noqa: BLE001 - the figures so far are kept and the error is reported
            search["error"] = f"{type(exc).__name__}: {exc}"
        if args.work is not None and (work / "mlflow.db").is_file():
            shutil.copy2(work / "mlflow.db", out / "mlflow.db")
        save()
    for name in ([] if args.quick else _LATER):
        left = args.budget_s - (time.monotonic() - t0)
        if left < _VARIANT_S[name]:
            record["skipped"].append(name)
            continue
        record["packing"].update(gpu_packing.measure([name], job=job, out=None))
        if "p1" in record["packing"] and "combined_img_s" in record["packing"][name]:
            record["packing"][name]["ratio"] = (record["packing"][name]["combined_img_s"]
                                                / record["packing"]["p1"]["combined_img_s"])
        packing_json.write_text(json.dumps(record["packing"], indent=1))
        save()
    record["total_s"] = time.monotonic() - t0
    save()
    print(markdown(record), flush=True)
    return record


if __name__ == "__main__":
    main()
