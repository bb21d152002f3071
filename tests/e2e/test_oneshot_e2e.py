"""strategy=oneshot end to end: the supernet pre-screens the space in the driver, its top picks are the search's
trials (trained from scratch through Ray Tune with the controls), confirmation runs as usual, the supernet is a
nested MLflow run with its ranking, and a rerun of the same command resumes with the same picks."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.e2e
ARGS = ["search.run", "space=fashion_attention", "name=os", "strategy=oneshot", "budget.trials=3", "budget.epochs=2",
        "budget.train_size=512", "budget.val_size=128", "oneshot.epochs=1", "oneshot.sample=8",
        "oneshot.recal_batches=2", "confirm.seeds=1", "confirm.max_seeds=1", "data.test_size=200",
        "train.precision=fp32", "latency.runs=5", "latency.batch=0"]


def test_oneshot_search_trains_the_supernets_picks_and_resumes(tmp_path: Path, run_cli) -> None:
    out = run_cli(ARGS, cwd=tmp_path).stdout
    assert "Kendall tau 0.27 [0.14, 0.40] and 0.44 [0.33, 0.54]" in out  # the measured ranking quality, said before it runs
    assert "One-shot pre-screen: 8 architectures scored with inherited weights" in out
    table = out.split("train from scratch:")[1].split("[")[0]
    picks = [line.split(None, 3)[3].strip() for line in table.strip().splitlines()[2:5]]
    assert len(picks) == 3
    started = re.findall(r"trial \d/6 \w+ start  (.+)", out)
    assert sorted(s.strip() for s in started) == sorted(picks)  # the searched trials are exactly the picks
    assert "Confirmed on the official test split" in out
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    (supernet,) = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'supernet'")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'search'")
    assert supernet.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert supernet.data.params["scored"] == "8" and "train_s" in supernet.data.metrics
    rows = list(csv.DictReader(open(client.download_artifacts(supernet.info.run_id, "ranking.csv", str(tmp_path)))))
    assert len(rows) == 8 and [r["arch"] for r in rows if r["picked"] == "True"] == picks
    assert parent.data.params["strategy"] == "oneshot"
    report = Path(client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path))).read_text()
    assert "One-shot pre-screen: the supernet's ranking against training from scratch" in report
    assert 'id="prescreen"' in report and "plot-prescreen" in report
    again = run_cli(ARGS, cwd=tmp_path).stdout
    assert "One-shot pre-screen: resumed with its 3 picks" in again and "supernet epoch" not in again
