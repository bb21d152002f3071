"""Fixtures shared across test folders.

``e2e_search``: one real, tiny search (the CLI on Fashion-MNIST through Ray + Optuna + ASHA + MLflow, controls and
confirmation included), run once per test session in a temporary folder and shared by ``tests/e2e/test_search_e2e.py``
and the browser test ``tests/dashboards/test_browser.py``, so CI pays for it once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
E2E_TRIALS = 5
E2E_EPOCHS = 2
E2E_SEEDS = (1, 2)  # confirmation seeds: the search's seed is 0


class E2ESearch(NamedTuple):
    name: str  # the search's name (its MLflow parent run and its Optuna study)
    folder: Path  # where it ran: mlflow.db, optuna.db, mlartifacts/, runs/
    stdout: str
    trials: int  # searched trials (the controls come on top)
    epochs: int
    seeds: tuple[int, ...]  # confirmation seeds


@pytest.fixture(scope="session")
def e2e_search(tmp_path_factory: pytest.TempPathFactory) -> E2ESearch:
    folder = tmp_path_factory.mktemp("search")
    args = ["search.run", "space=fashion_attention", "name=e2e", f"budget.trials={E2E_TRIALS}",
            f"budget.epochs={E2E_EPOCHS}", "budget.train_size=768", "budget.val_size=512", "budget.batch_size=64",
            "latency.runs=10", "sampler=random", "confirm.top_k=1", f"confirm.seeds={len(E2E_SEEDS)}"]
    result = subprocess.run([sys.executable, "-m", *args], cwd=folder, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return E2ESearch(name="e2e", folder=folder, stdout=result.stdout, trials=E2E_TRIALS, epochs=E2E_EPOCHS,
                     seeds=E2E_SEEDS)
