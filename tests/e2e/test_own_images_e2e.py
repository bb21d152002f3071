"""The user's own images, end to end: a folder of PNGs -> ``python -m search.run space=your_data data.root=DIR`` ->
``python -m search.export`` -> the exported module classifies an image file.

The folder holds real Fashion-MNIST images written as PNG files (28, 36 and 48 px; a third RGB, the rest grayscale),
one subfolder per class, as a user's folder would. Nothing is mocked; the search is shrunk to fit CI's 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[2]
PER_CLASS = 40  # 10 classes -> 400 PNGs: 80 test (the fixed fifth), 100 val, 220 train
TRIALS = 2
EPOCHS = 2

pytestmark = pytest.mark.e2e



def test_search_and_export_on_a_folder_of_pngs(tmp_path: Path, fashion_pngs, run_cli) -> None:
    images = tmp_path / "my_images"
    files = fashion_pngs(images, per_class=PER_CLASS)
    search = ["search.run", "space=your_data", f"data.root={images}", f"data.cache={tmp_path / 'cache'}",
              "name=own", f"budget.trials={TRIALS}", f"budget.epochs={EPOCHS}", "budget.val_size=100",
              "budget.batch_size=32", "latency.runs=5", "latency.batch=0", "sampler=random", "confirm.top_k=1",
              "confirm.seeds=2", "confirm.max_seeds=2", "train.precision=fp32"]
    result = run_cli(search, cwd=tmp_path)
    out = result.stdout
    # the data line, before anything trains: count, classes, shape from the data (mixed modes -> RGB; 36 px median
    # -> 32 px), memory
    assert f"image_folder {images}: {10 * PER_CLASS} images in 10 classes, 3×32×32, 1.2 MB as uint8 tensors" in out
    assert "decoding once into cache" in out
    assert "space your_data on image_folder" in out and "Pareto front (" in out
    assert "Confirmed on the official test split of image_folder (80 images)" in out  # its fixed fifth

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'search'")
    assert parent.info.status == "FINISHED" and parent.data.params["dataset"] == "image_folder"
    trials = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'trial'")
    assert trials and all(r.info.status == "FINISHED" for r in trials)

    # the exported module rebuilds the confirmed pick (in_chans and num_classes from the folder) and classifies a PNG
    exported = run_cli(["search.export", "out=exported", "module_name=my_model"], cwd=tmp_path)
    assert f"to {tmp_path / 'exported' / 'my_model'}/: README.md, __init__.py" in exported.stdout
    check = (
        "import sys, torch\n"
        "from my_model import build_model, load_image, DATA\n"
        "model = build_model()\n"
        "x = load_image(sys.argv[1])\n"
        "assert x.shape == (1, 3, 32, 32), x.shape\n"
        "with torch.inference_mode():\n"
        "    scores = model(x)\n"
        "assert scores.shape == (1, 10), scores.shape\n"
        "print('class', DATA['classes'][int(scores.argmax())])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'exported'}{os.pathsep}{REPO}"}
    ran = subprocess.run([sys.executable, "-c", check, str(files[-1])], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("class ") and ran.stdout.split()[1] in {p.parent.name for p in files}

