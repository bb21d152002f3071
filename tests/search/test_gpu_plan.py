"""The GPU budget's plan without a GPU: a real local Ray that declares one GPU packs the `gpu` budget's trials as
``budget.gpu_per_trial`` says, and every trial is told the GPU Ray reserved for it (what
``search.execution.trainable.train_architecture`` trains on). The training itself needs CUDA and is not run here;
Ray's scheduling, resource accounting and CUDA_VISIBLE_DEVICES are real. ``device=cuda`` on a machine without CUDA
is one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.confirm.phase import ListSearcher
from search.execution.trainable import assigned_device
from search.execution.tuner import ray_runtime, run_tuner
from search.plan_check import local_concurrency
from spaces import load_space

REPO = Path(__file__).resolve().parents[2]
GPU_BUDGET = load_space("fashion_attention").budgets["gpu"]


def test_the_gpu_budget_packs_trials_per_gpu_and_cpu_trials_per_core() -> None:
    per_gpu = round(1 / GPU_BUDGET.gpu_per_trial)
    assert local_concurrency(budget=GPU_BUDGET, hardware="cuda", cpus=16, gpus=1) == per_gpu
    assert local_concurrency(budget=GPU_BUDGET, hardware="cuda", cpus=16, gpus=2) == 2 * per_gpu
    cpu_budget = load_space("fashion_attention").budgets["cpu"]
    assert local_concurrency(budget=cpu_budget, hardware="cpu", cpus=2, gpus=0) == 2 // cpu_budget.cpu_per_trial


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.e2e
def test_a_ray_with_one_declared_gpu_runs_the_gpu_budgets_packing(tmp_path: Path) -> None:
    concurrency = local_concurrency(budget=GPU_BUDGET, hardware="cuda", cpus=8, gpus=1)
    trials = 2 * concurrency
    resources = {"cpu": 1, "gpu": GPU_BUDGET.gpu_per_trial}  # one core each: CI has 2, Ray is told 8
    out = tmp_path / "seen"
    out.mkdir()
    configs = [{"index": i, "out": str(out), "packed": concurrency} for i in range(trials)]

    def probe_trial(config: dict) -> None:  # nested: Ray's workers get it by value (tests/ is not importable there)
        """Asks where it trains, holds its resources until as many trials as the budget packs have started (or 60 s:
        a fixed pause let slow starts on a loaded machine miss each other), writes what it saw."""
        from ray import tune

        started = time.time()
        Path(config["out"], f"{config['index']}.start").touch()
        device, gpu_ids = assigned_device("cuda")
        while len(list(Path(config["out"]).glob("*.start"))) < config["packed"] and time.time() - started < 60:
            time.sleep(0.05)
        time.sleep(0.2)
        Path(config["out"], f"{config['index']}.json").write_text(json.dumps({
            "device": device, "gpu_ids": gpu_ids, "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "start": started, "end": time.time()}))
        tune.report({"done": 1.0})

    with ray_runtime(num_cpus=8, num_gpus=1):
        results = run_tuner(trainable=probe_trial, resources=resources, experiment_dir=str(tmp_path / "runs" / "gpu"),
                            searcher=ListSearcher(configs), scheduler=None, num_samples=trials,
                            concurrency=concurrency, callbacks=[])
    assert not results.errors
    seen = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert len(seen) == trials
    assert {(s["device"], s["gpu_ids"], s["visible"]) for s in seen} == {("cuda", "0", "0")}  # each told its GPU
    assert _most_at_once([(s["start"], s["end"]) for s in seen]) == concurrency  # packed as the budget says


def test_assigned_device_without_a_reserved_gpu_names_the_setting() -> None:
    # outside a Ray trial no GPU is reserved: a CUDA trial must refuse rather than crowd an unaccounted GPU
    with pytest.raises(RuntimeError, match=r"budget.gpu_per_trial"):
        assigned_device("cuda")
    assert assigned_device("cpu") == ("cpu", "")


def test_device_cuda_without_cuda_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible, even on a GPU box
    result = subprocess.run([sys.executable, "-m", "search.run", "space=fashion_attention", "device=cuda"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["error: device=cuda but no CUDA device is visible; use device=auto or "
                                          "device=cpu"]
    assert not list(tmp_path.iterdir())  # nothing written
