"""A segmentation search end to end: the CLI on ``fashion_scenes`` (a U-Net space) through Ray + Optuna + ASHA +
MLflow, confirmation on the test scenes in mIoU points, the report's mask panel, then export with its ONNX and
torch.export checks on the mask logits and the exported ``predict`` returning masks.

Nothing is mocked. The space is fashion_seg_attention with one control besides the plain U-Net (gated skips) and the
search shrunk to a few trials of one epoch on a few scenes, so it fits CI's 2 cores in a few minutes.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from spaces.loader import SPACES_DIR

pytestmark = pytest.mark.e2e

TRIALS = 2  # searched trials; the controls come on top
CONTROLS = ("plain", "gated_skips")
NAME = "seg"


@pytest.fixture(scope="module")
def seg_search(tmp_path_factory: pytest.TempPathFactory, run_cli) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("seg")
    raw = yaml.safe_load((SPACES_DIR / "fashion_seg_attention.yaml").read_text())
    raw["controls"] = {"gated_skips": raw["controls"]["gated_skips"]}  # plain + one control: fewer runs in CI
    space = folder / "seg_tiny.yaml"
    space.write_text(yaml.safe_dump(raw))
    result = run_cli(["search.run", f"space={space}", f"name={NAME}", f"budget.trials={TRIALS}", "budget.epochs=1",
                      "budget.train_size=96", "budget.val_size=48", "budget.batch_size=32", "sampler=random",
                      "latency.runs=3", "latency.warmup=1", "latency.batch=0", "train.precision=fp32",
                      "confirm.top_k=1", "confirm.seeds=2", "confirm.max_seeds=2", "data.test_size=48"],
                     cwd=folder)
    return folder, result.stdout


def test_the_search_ranks_val_miou_and_confirms_in_miou_points(seg_search: tuple[Path, str]) -> None:
    folder, stdout = seg_search
    total = TRIALS + len(CONTROLS)
    assert f"trial {total}/{total}" in stdout and "val_miou=" in stdout and "val_pixel_acc=" in stdout
    for control in CONTROLS:
        assert f"start (control {control})" in stdout
    front = stdout.split("Pareto front (")[1].split("\n\n")[0]
    assert "val_miou" in front.splitlines()[1] and "val_acc" not in front
    confirmed = stdout.split("Confirmed on the official test split")[1]
    assert "test_miou mean ± std" in confirmed and "search val_miou" in confirmed
    assert "mIoU points" in confirmed.split("\n\n")[1], confirmed  # the verdict says what it resolved, in mIoU points


def test_mlflow_has_one_finished_nested_run_per_trial_and_the_reports(seg_search: tuple[Path, str]) -> None:
    folder, _ = seg_search
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    parent = next(r for r in runs if r.data.tags.get("attnas.role") == "search")
    trials = [r for r in runs if r.data.tags.get("attnas.role") == "trial"]
    assert len(trials) == TRIALS + len(CONTROLS)
    assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent.info.run_id
               for r in trials)
    assert all("val_miou" in r.data.metrics and "val_pixel_acc" in r.data.metrics for r in trials)
    confirms = [r for r in runs if r.data.tags.get("attnas.role") == "confirm"]
    assert confirms and all("test_miou" in r.data.metrics for r in confirms)
    assert "mIoU points" in parent.data.tags["attnas.verdict"]
    local = Path(client.download_artifacts(parent.info.run_id, "pareto/pareto.csv", str(folder)))
    with local.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and "val_miou" in rows[0] and any(row["pareto"] == "True" for row in rows)
    table = Path(client.download_artifacts(parent.info.run_id, "confirmation/confirmed.csv", str(folder)))
    assert "test_miou_mean" in table.read_text().splitlines()[0]
    report = Path(client.download_artifacts(parent.info.run_id, "report.html", str(folder))).read_text()
    assert "val_miou vs latency_norm_ms" in report and "predicted mask" in report


def test_export_checks_onnx_on_masks_and_predict_returns_masks(seg_search: tuple[Path, str], run_cli) -> None:
    folder, _ = seg_search
    result = run_cli(["search.export", f"search={NAME}", "module_name=seg_model", "register=false"], cwd=folder)
    assert "check model.onnx" in result.stdout and "check model.pt2" in result.stdout
    package = folder / "exported" / "seg_model"
    assert {"model.onnx", "model.pt2", "model.safetensors", "README.md"} <= {p.name for p in package.iterdir()}
    spec = importlib.util.spec_from_file_location("seg_model", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["seg_model"] = module
    spec.loader.exec_module(module)
    images = torch.randn(2, *module.DATA["image_shape"])
    masks = module.predict(images)
    assert masks.shape == (2, 64, 64) and masks.dtype == torch.int64
    assert int(masks.max()) < len(module.DATA["classes"]) == 11
    assert "val_miou" in module.METRICS or "test_miou" in module.METRICS
