"""Smoke runs: every benchmark's main() with --quick (tiny sizes, seconds), so the scripts do not rot."""

import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.latency_repeatability import spearman

BENCHMARKS = ["trial_vs_bare", "data_pipeline", "latency_repeatability", "gpu_throughput"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_run_prints_figures_with_their_environment(name, capsys):
    figures = importlib.import_module(f"benchmarks.{name}").main(["--quick"])
    out = capsys.readouterr().out
    assert "----- markdown for BENCHMARKS.md -----" in out and "\n|---|" in out
    for field in (f"Command: `python -m benchmarks.{name} --quick`", "Device: ", "torch ", "threads 1", "Date: "):
        assert field in out
    assert figures and all(isinstance(value, float) for value in figures.values())


def test_spearman_matches_hand_computed_values():
    assert spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    assert spearman([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(math.sqrt(3) / 2)  # a tie: average ranks
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_gpu_throughput_imports_no_ray_mlflow_or_search():
    """It must run on a GPU host that has only torch, torchvision and timm."""
    code = ("import sys, benchmarks.gpu_throughput; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'search', 'optuna', 'hydra'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_orchestration_quick_run_goes_through_the_real_search(tmp_path):
    """Ray, Optuna, ASHA and MLflow for real (1 and 2 trivial trials); its own process, as Ray wants."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.orchestration", "--quick"], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Marginal overhead per trial: **" in out.stdout and "| 2 |" in out.stdout


def test_latency_in_search_quick_run_goes_through_a_real_concurrent_search():
    """Ray Tune with the real trainable, 2 trials at once, with and without the probe slot; its own process."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.latency_in_search", "--quick"],
                         cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| with slot | plain |" in out.stdout and "| without slot | cbam_r16_k7 |" in out.stdout
    assert "median over all 3 pairs (latency_ms)" in out.stdout and "Date: " in out.stdout


def test_pairwise_differences_are_relative_to_the_smaller():
    from benchmarks.latency_in_search import pairwise

    assert pairwise([2.0, 2.1, 4.0]) == pytest.approx([0.05, 1.0, 4.0 / 2.1 - 1])


def test_trial_vs_bare_with_the_probe_slot_says_so(capsys):
    from benchmarks.trial_vs_bare import main

    main(["--quick", "--probe-slot"])
    assert "holds an (uncontended) probe slot" in capsys.readouterr().out
