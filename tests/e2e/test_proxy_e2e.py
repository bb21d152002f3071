"""The proxy-task check for real, on a tiny budget: ``python -m search.proxy`` on Fashion-MNIST trains every
(architecture, seed, budget), prints the fidelity table and a recommendation, writes its JSON, and a rerun resumes
without training anything again."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e
ARGS = ["search.proxy", "space=fashion_attention", "archs=3", "seeds=2", "reference=1x256", "budgets=[1x128]",
        "workers=2", "train.precision=fp32", "data.test_size=200", "budget.val_size=128", "budget.ema=0.9", "out=proxy"]


def test_the_check_runs_reports_and_resumes(tmp_path: Path, run_cli) -> None:
    first = run_cli(ARGS, cwd=tmp_path).stdout
    record = json.loads((tmp_path / "proxy" / "fashion_attention.json").read_text())
    assert len(record["runs"]) == 3 * 2 * 2 and {r["budget"] for r in record["runs"]} == {"1x256", "1x128"}
    assert list(record["meta"]["archs"])[:3] == ["plain", "se_r16", "cbam_r16_k7"]
    assert record["command"].endswith(shlex.join(ARGS[1:])) and record["environment"]["torch"]
    assert all(0 <= r["test_acc"] <= 1 and len(r["val_acc"]) == 1 and r["train_s"] > 0 for r in record["runs"])
    assert all(len(r["val_acc_raw"]) == 1 for r in record["runs"])  # budget.ema reached the runs: both evaluations
    assert record["meta"]["recipe"]["ema"] == 0.9 and record["meta"]["test_size"] == 200
    assert "tau vs reference" in first and "1x128" in first and record["summary"]["sentence"] in first
    assert "12/12" in first  # a progress line per finished run
    again = run_cli(ARGS, cwd=tmp_path).stdout
    assert "12 done before" in again and "/12 " not in again.split("done before")[1]  # nothing trained again
    assert "Training arithmetic" not in again  # the recorded choice of arithmetic is kept, not timed again
    half = json.loads((tmp_path / "proxy" / "fashion_attention.json").read_text())
    half["runs"] = [r for r in half["runs"] if r["seed"] == 1]  # as if stopped half-way (seed-major order)
    (tmp_path / "proxy" / "fashion_attention.json").write_text(json.dumps(half))
    partial = run_cli([*ARGS, "report=true"], cwd=tmp_path).stdout
    assert "6 runs recorded so far; nothing is trained" in partial and "tau vs reference" in partial
    assert len(json.loads((tmp_path / "proxy" / "fashion_attention.json").read_text())["runs"]) == 6


def test_a_malformed_budget_is_one_error_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "search.proxy", "budgets=[3y300]"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "budgets='3y300'" in result.stderr and "EPOCHSxTRAIN_SIZE" in result.stderr
    assert not (tmp_path / "proxy").exists()
