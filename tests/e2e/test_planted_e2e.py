"""benchmarks.planted for real at --quick sizes: the twin folder written, the per-kind training (--why), one real
search through ``python -m search.run space=your_data data.root=DIR`` (Ray + Optuna + ASHA + MLflow, confirmation),
its confirmed table read back from the MLflow store, the summary printed; a rerun reuses it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "benchmarks.planted", "--quick", "--why", "--datasets", "twin", "--searches", "1"]

pytestmark = pytest.mark.e2e


def _run(out: Path) -> str:
    done = subprocess.run([*COMMAND, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_planted_runs_the_real_search_and_counts_its_verdict(tmp_path: Path) -> None:
    out = tmp_path / "planted"
    first = _run(out)
    outcome = json.loads((out / "searches" / "twin-seed0" / "outcome.json").read_text())
    assert outcome["command"].startswith("python -m search.run space=your_data data.root=")
    names = {row["name"] for row in outcome["rows"]}  # the CPU confirmation: the plain backbone and the front's pick
    assert "plain" in names and outcome["pick"] in names | {"plain"} and len(names) <= 2
    assert next(r for r in outcome["rows"] if r["name"] == "plain")["verdict"] == "reference"
    assert outcome["verdict"] and outcome["pick_better"] == (outcome["pick"] != "plain")
    assert "Kinds that learn the relation alone" in first
    assert f"false positives on twin: {int(outcome['pick_better'])} of 1" in first
    rows = json.loads((out / "why.json").read_text())
    assert {"plain", "nl_r8", "cbam_r8", "attn_pool_head"} <= {row["arch"] for row in rows}
    log = out / "searches" / "twin-seed0" / "search.log"
    stamp = log.stat().st_mtime_ns
    again = _run(out)  # everything reused: no training, no new search
    assert "  why: " not in again and log.stat().st_mtime_ns == stamp
    assert f"false positives on twin: {int(outcome['pick_better'])} of 1" in again
