"""A search ranked by a latency table, end to end, with this machine's CPU as the target device.

As a user would: ``python -m devices bundle`` writes the bundle, its own ``time_bundle.py`` times it (ONNX Runtime, 1
thread) into ``latency_table.json``, and ``python -m search.run ... latency.table=latency_table.json`` searches with
the predicted target latency as its second objective (Optuna, ASHA's Pareto rank, the front, pareto.csv, the
report), each trial logging it beside the latency measured here, and the confirmed rows carrying the prediction and,
the target being this machine, a measurement. Bad tables end in one line, exit 2, nothing written.
"""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from backbones import ArchConfig
from devices import load_predictor
from search.pareto import pareto_order
from spaces import load_space

REPO = Path(__file__).resolve().parents[2]
SEARCH = ["budget.trials=3", "budget.epochs=1", "budget.train_size=256", "budget.val_size=128", "latency.runs=3",
          "latency.batch=0", "sampler=random", "confirm.top_k=1", "confirm.seeds=1", "confirm.max_seeds=1",
          "data.test_size=200", "train.precision=fp32", "asha.rank=pareto"]

pytestmark = pytest.mark.e2e


def _run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-stage space {none, se/r8, eca/k3} with the plain control only, its bundle timed here by its own script,
    and the table."""
    folder = tmp_path_factory.mktemp("target")
    raw = yaml.safe_load((REPO / "spaces" / "fashion_attention.yaml").read_text())
    raw.update(name="tiny_target", head=["avg"], stages={2: {}, 3: {}}, controls={},  # the plain control only
               defaults={"types": ["none", "se", "eca"], "reduction": [8], "kernel_size": [3],
                         "position": ["after_block"]})
    space = folder / "tiny_target.yaml"
    space.write_text(yaml.safe_dump(raw))
    made = _run(["-m", "devices", "bundle", str(space), "--out", "bundle", "--calibration", "5", "--held-out", "3",
                 "--image", "1x28x28", "--classes", "10"], cwd=folder)
    assert made.returncode == 0, made.stderr[-3000:]
    timed = _run(["bundle/time_bundle.py", "--runs", "20", "--warmup", "2", "--out", "latency_table.json"],
                 cwd=folder)
    assert timed.returncode == 0, timed.stderr[-3000:]
    return {"folder": folder, "space": space, "table": folder / "latency_table.json"}


@pytest.fixture(scope="module")
def searched(target: dict[str, Path]) -> tuple[Path, str]:
    folder = target["folder"] / "search"
    folder.mkdir()
    result = _run(["-m", "search.run", f"space={target['space']}", "name=target",
                   f"latency.table={target['table']}", *SEARCH], cwd=folder)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return folder, result.stdout


def _runs(folder: Path) -> tuple[mlflow.MlflowClient, list]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("attnas").experiment_id], max_results=100)


def test_the_search_says_what_it_ranks_and_ranks_it(target, searched) -> None:
    folder, stdout = searched
    assert "The search ranks latency_target_ms: latency predicted for " in stdout
    assert "predictor error on its 3 architectures: MAPE" in stdout
    front = stdout.split("Pareto front (")[1]
    assert "latency_target_ms" in front.splitlines()[1]  # the front's table shows what it ranks
    study = optuna.load_study(study_name="target", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert study.metric_names == ["val_acc", "latency_target_ms"]
    client, runs = _runs(folder)
    trials = [r for r in runs if r.data.tags.get("attnas.role") == "trial"]
    assert len(trials) == 4  # 3 searched + the plain control
    space = load_space(str(target["space"]))
    budget = space.budgets["cpu"]
    predictor = load_predictor(target["table"], space=space, base=space.base_arch(
        backbone=budget.backbone, in_chans=1, num_classes=10, backbone_kwargs=budget.backbone_kwargs))
    by_trial = {}
    for run in trials:
        metrics = run.data.metrics
        # both: the ranked prediction for the target, and the latency measured here
        assert {"latency_target_ms", "latency_ms", "latency_norm_ms"} <= set(metrics), run.info.run_name
        by_trial[run.data.tags["attnas.trial_id"]] = metrics["latency_target_ms"]
    told = 0
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):  # Optuna was told the prediction
        if (ray_id := trial.user_attrs.get("ray_trial_id")) in by_trial:
            arch = ArchConfig.from_dict(json.loads(trial.user_attrs["arch"]))
            assert trial.values[1] == pytest.approx(by_trial[ray_id]) == pytest.approx(predictor.predict(arch))
            told += 1
    assert told >= 3  # every trained trial (a repeated proposal is told its twin's result)
    with open(next(folder.glob("mlartifacts/*/artifacts/pareto/pareto.csv")), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[3:6] == ["val_acc", "latency_target_ms", "latency_ms"]
    points = [(float(r["val_acc"]), float(r["latency_target_ms"])) for r in rows]
    first = pareto_order(points)[0]  # the best by non-dominated rank on (val_acc, latency_target_ms) is on the front
    assert rows[first]["pareto"] == "True"


def test_the_parent_run_keeps_the_table(target, searched) -> None:
    folder, _ = searched
    client, runs = _runs(folder)
    parent = next(r for r in runs if r.data.tags.get("attnas.role") == "search")
    assert parent.data.params["latency.table"] == str(target["table"])
    assert "1 thread(s), batch 1" in parent.data.tags["attnas.latency_table"]
    assert "within ±10%" in parent.data.tags["attnas.latency_table_error"]
    kept = Path(client.download_artifacts(parent.info.run_id, "latency/latency_table.json", str(folder)))
    assert json.loads(kept.read_text()) == json.loads(target["table"].read_text())


def test_confirmed_rows_show_the_prediction_and_a_measurement_here(searched) -> None:
    folder, stdout = searched
    assert "The latency table was measured on this machine: timing the confirmed architectures" in stdout
    assert "target_ms predicted" in stdout.split("Confirmed on")[1].splitlines()[1]
    with open(next(folder.glob("mlartifacts/*/artifacts/confirmation/confirmed.csv")), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows][0] == "plain" and len(rows) == 2
    for row in rows:
        predicted, measured = float(row["latency_target_ms"]), float(row["latency_target_measured_ms"])
        assert predicted > 0 and measured > 0
    report = next(folder.glob("mlartifacts/*/artifacts/report.html")).read_text()
    assert "latency_target_ms" in report and "target ms (measured here)" in report


def test_a_table_of_another_space_is_one_line_exit_2_nothing_written(target, tmp_path) -> None:
    """(A missing file and a malformed table: tests/search/test_bad_input.py, in-process.)"""
    result = _run(["-m", "search.run", "space=fashion_attention", f"latency.table={target['table']}", *SEARCH],
                  cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: latency.table=") and \
        "was measured for space 'tiny_target', not 'fashion_attention'" in lines[0], lines
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no optuna.db, no runs/


def test_the_benchmark_reads_the_search(searched) -> None:
    """benchmarks.target_search on this search: both latencies' rank agreement, the two fronts, the confirmed rows'
    prediction against their measurement here."""
    folder, _ = searched
    result = _run(["-m", "benchmarks.target_search", "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
                   "--name", "target"], cwd=folder, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "----- markdown for BENCHMARKS.md -----" in out and "Command: `python -m benchmarks.target_search" in out
    assert "| trials with both latencies | 4 | Kendall tau " in out
    assert re.search(r"\| plain \| - \\\| - \\\| - \\\| - \| [\d.]+ \| [\d.]+ \| [+-][\d.]+% \|", out), out[-1500:]


def test_export_says_the_picks_predicted_target_latency(searched) -> None:
    folder, _ = searched
    result = _run(["-m", "search.export", "register=false"], cwd=folder, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"latency_target_ms [\d.]+ \(predicted for .*1 thread\(s\), batch 1", result.stdout), \
        result.stdout[-3000:]
