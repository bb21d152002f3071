"""Fixtures shared across test folders.

``e2e_search``: one real, tiny search (the CLI on Fashion-MNIST through Ray + Optuna + ASHA + MLflow, controls and
confirmation included), run once per test session in a temporary folder and shared by ``tests/e2e/test_search_e2e.py``
and the browser test ``tests/dashboards/test_browser.py``, so CI pays for it once.

``fashion_pngs``: a folder of real Fashion-MNIST images written as PNG files (the image-folder tests).

``mlflow_server``: starts real ``mlflow server`` processes for a test module (the cluster and team tests).

The README's test command runs two pytest-xdist workers (``-n 2 --dist loadfile``): much of an end-to-end test's
time is spent waiting on subprocesses, servers and Ray, so two at once on two cores take less time. Each test file
runs on one worker (its module fixtures run once), and :func:`pytest_xdist_make_scheduler` puts the two users of
``e2e_search`` on one worker too, so it runs once.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from trials import DATASETS, TensorData, load_dataset

REPO = Path(__file__).resolve().parents[1]
E2E_TRIALS = 5
E2E_EPOCHS = 2
E2E_SEEDS = (1, 2)  # confirmation seeds: the search's seed is 0
E2E_TEST_SIZE = 1000  # confirmation scores on a fixed stratified 1,000 of the 10,000 test images (CI time)
E2E_TRAIN_SIZE = 640  # the search's train images
# the confirmation trains at a larger budget than the search (budget.confirm_*), as the GPU budget's does; the search
# trains on 640 images (not 768) so that its trials' fewer steps pay for part of the confirmation's extra epoch
E2E_CONFIRM_EPOCHS = 3
E2E_CONFIRM_TRAIN_SIZE = 768


E2E_SEARCH_FILES = ("tests/e2e/test_search_e2e.py", "tests/dashboards/test_browser.py")  # e2e_search's users


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: without pytest-xdist, pytest never calls it
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """For ``--dist loadfile``: each file on one worker, and :data:`E2E_SEARCH_FILES` on one worker together (module
    docstring); other modes are pytest-xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedSearchScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "e2e_search" if scope in E2E_SEARCH_FILES else scope

    return SharedSearchScheduling(config, log)


def cli(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python -m ARGS`` in ``cwd`` with this checkout first on the path; assert it exits 0 (else show its
    output tail)."""
    result = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`cli`: run a module of this project as a user would, asserting success."""
    return cli


class E2ESearch(NamedTuple):
    name: str  # the search's name (its MLflow parent run and its Optuna study)
    folder: Path  # where it ran: mlflow.db, optuna.db, mlartifacts/, runs/
    stdout: str
    trials: int  # searched trials (the controls come on top)
    epochs: int
    seeds: tuple[int, ...]  # confirmation seeds
    train_size: int  # the search's train images
    confirm: tuple[int, int]  # the confirmation's (epochs, train images)


@pytest.fixture(scope="session")
def e2e_search(tmp_path_factory: pytest.TempPathFactory) -> E2ESearch:
    folder = tmp_path_factory.mktemp("search")
    args = ["search.run", "space=fashion_attention", "name=e2e", f"budget.trials={E2E_TRIALS}",
            f"budget.epochs={E2E_EPOCHS}", f"budget.train_size={E2E_TRAIN_SIZE}", "budget.val_size=512",
            "budget.batch_size=64", "latency.runs=10", "sampler=random", "confirm.top_k=1",
            # two rounds of the sequential rule: a look at 1 seed (no interval yet: add seeds), the last at 2
            "confirm.seeds=1", f"confirm.max_seeds={len(E2E_SEEDS)}",
            f"data.test_size={E2E_TEST_SIZE}",
            f"budget.confirm_epochs={E2E_CONFIRM_EPOCHS}", f"budget.confirm_train_size={E2E_CONFIRM_TRAIN_SIZE}"]
    result = cli(args, cwd=folder)
    return E2ESearch(name="e2e", folder=folder, stdout=result.stdout, trials=E2E_TRIALS, epochs=E2E_EPOCHS,
                     seeds=E2E_SEEDS, train_size=E2E_TRAIN_SIZE, confirm=(E2E_CONFIRM_EPOCHS, E2E_CONFIRM_TRAIN_SIZE))


FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
SIDES = (28, 36, 48)  # px: the PNGs come in several sizes


def write_fashion_pngs(root: Path, *, per_class: int, classes: int = 10, offset: int = 0) -> list[Path]:
    """Write `per_class` real Fashion-MNIST train images of each of the first `classes` classes as PNGs into
    root/CLASS/NNNN.png: sides cycle through SIDES, every third image is RGB (a tinted copy), the rest grayscale.
    `offset` skips that many images per class first (disjoint sets for train/ and test/ folders)."""
    from PIL import Image

    source = _fashion_train()
    written = []
    for label in range(classes):
        picks = np.flatnonzero(source.train_y.numpy() == label)[offset:offset + per_class]
        folder = root / FASHION_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        for i, index in enumerate(picks):
            side = SIDES[i % len(SIDES)]
            image = Image.fromarray(source.train_x[index, 0].numpy()).resize((side, side), Image.Resampling.BILINEAR)
            if i % 3 == 2:
                image = Image.merge("RGB", (image, image.point(lambda v: v * 0.9), image.point(lambda v: v * 0.8)))
            path = folder / f"{offset + i:04d}.png"
            image.save(path)
            written.append(path)
    return written


@functools.cache
def _fashion_train() -> TensorData:
    return load_dataset("fashion_mnist", train_size=5000, val_size=1, seed=0)


@pytest.fixture
def fashion_pngs() -> Callable[..., list[Path]]:
    """Factory: fashion_pngs(root, per_class=N, classes=10, offset=0) -> the PNG files written (skips without the
    Fashion-MNIST files)."""
    if not Path(DATASETS["fashion_mnist"].default_root).is_dir():
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist)")
    return write_fashion_pngs


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a backend store and proxied artifacts, in its own process group; can be
    killed (a crash: the server and its workers, no goodbye) and started again on the same port."""

    def __init__(self, *, backend: str, artifacts: Path) -> None:
        self.backend, self.artifacts = backend, artifacts
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
             "1", "--backend-store-uri", self.backend, "--artifacts-destination", str(self.artifacts)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_server() -> Iterator[Callable[..., MlflowServer]]:
    """``start(backend=URI, artifacts=FOLDER)``: a running :class:`MlflowServer`; every one is killed after the
    module."""
    started: list[MlflowServer] = []

    def start(*, backend: str, artifacts: Path) -> MlflowServer:
        server = MlflowServer(backend=backend, artifacts=artifacts)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.kill()
