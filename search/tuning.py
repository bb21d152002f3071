"""Ray Tune wiring: the Ray runtime, the trainable, ASHA early stopping and the Tuner (new or restored).

ASHA (https://arxiv.org/abs/1810.05934) stops weak trials at rungs of ``val_acc``; the searcher
(:class:`search.searcher.StudySearcher`) proposes architectures from the Optuna study.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher
from torch import nn

from backbones import ArchConfig, build
from search.artifacts import load_metrics, save_checkpoint
from search.outcomes import EPOCH, LATENCY_OBJECTIVE, NODE_ID, PROBE_PREFIX
from search.ray_adapter import set_callbacks_of_restored_tuner
from search.storage import split
from trials import Constraints, ProbeConfig, TensorData, TrainConfig, TrialResult, evaluate, run_trial


class ControlsRunFullASHA(ASHAScheduler):
    """ASHA that never stops a control (a trial whose config names one) before its full budget.

    A control's results still enter the rungs, so they raise the bar for searched trials as any other trial's do.
    """

    TIME_ATTR = "training_iteration"  # one unit per epoch: each trial reports once per epoch

    def __init__(self, *, full_epochs: int, **kwargs: Any) -> None:
        super().__init__(time_attr=self.TIME_ATTR, max_t=full_epochs, **kwargs)
        self.full_epochs = full_epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == TrialScheduler.STOP and trial.config.get("control")
                and result.get(self.TIME_ATTR, 0) < self.full_epochs):
            return TrialScheduler.CONTINUE
        return decision


def make_scheduler(*, full_epochs: int, grace_period: int, reduction_factor: float) -> ASHAScheduler:
    """ASHA on ``val_acc``, one rung unit per epoch (each trial reports once per epoch); controls run in full."""
    return ControlsRunFullASHA(
        full_epochs=full_epochs,
        metric="val_acc",
        mode="max",
        grace_period=min(grace_period, full_epochs),
        reduction_factor=reduction_factor,
    )


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a search gets besides its architecture and the data: ``run_trial``'s settings."""

    train: TrainConfig
    probe: ProbeConfig
    constraints: Constraints  # hard budgets, checked after the probe
    device: str  # "cpu" | "cuda" | "auto"
    threads: int | None  # torch intra-op threads per trial; None = leave as is
    # the plain backbone's batch-1 latency (ms) measured alone at search start: latency_norm_ms = latency_rel x this
    reference_latency_ms: float | None = None
    # the exclusive probe slot's lock file (trials.ProbeSlot), in the node's temp folder
    # (search.storage.probe_lock_path): while a trial times its latency no other trial of the search on that node
    # computes; None = no slot
    probe_lock: Path | None = None


def train_architecture(config: dict[str, Any], *, data: TensorData, settings: TrialSettings,
                       latency_reference: bool = False,
                       build_model: Callable[[ArchConfig], nn.Module] = build) -> None:
    """Ray trainable: build ``config["arch"]``, run the plain trial, report every epoch to Tune.

    ``config`` may also carry ``seed`` (train with this seed instead of the search's; the confirmation phase) and
    ``test: True`` (the last report adds ``test_acc``, top-1 on the official test split, which ``data`` then holds).

    The final epoch's report carries a checkpoint (weights + reference input/output + arch + metrics) that the
    MLflow callback uploads and ``search.export`` rebuilds from. With ``latency_reference`` the plain backbone
    (``ArchConfig.plain``) is timed interleaved with the model, which adds ``latency_rel``. When Ray restores a
    trial that already reached that checkpoint (the driver was killed before it recorded the trial as finished),
    the trial is not trained again: its saved final metrics are reported once more with the same checkpoint.
    ``build_model`` is ``backbones.build`` (``search.faults.with_faults`` swaps it to make a trial fail on purpose).
    ``settings.probe_lock`` (set by ``search.plan``) makes the latency probe exclusive among the search's trials
    (``run_trial(probe_lock=...)``, ``trials.ProbeSlot``).
    """
    arch = ArchConfig.from_dict(config["arch"])
    train = settings.train if config.get("seed") is None else replace(settings.train, seed=int(config["seed"]))
    epochs = train.epochs
    if (restored := tune.get_checkpoint()) is not None:
        with restored.as_directory() as folder:
            final = load_metrics(folder)
        if final is not None and int(final.get(EPOCH, 0)) >= epochs:
            tune.report(final, checkpoint=restored)
            return
    torch.manual_seed(train.seed)  # the same ArchConfig and seed give the same initial weights
    model = build_model(arch)
    node_id = ray.get_runtime_context().get_node_id()  # the Ray node it trains on (Tune adds node_ip, hostname)

    def report(result: TrialResult, trained: Any) -> None:
        # what the latency was measured on rides along in every report; the MLflow callback logs it as params
        metrics = {**result.metrics, **{f"{PROBE_PREFIX}{k}": v for k, v in result.device_info.items()},
                   NODE_ID: node_id}
        metrics[LATENCY_OBJECTIVE] = (metrics["latency_rel"] * settings.reference_latency_ms
                                      if "latency_rel" in metrics and settings.reference_latency_ms
                                      else metrics["latency_ms"])
        if int(metrics[EPOCH]) < epochs:
            tune.report(metrics)
            return
        if config.get("test"):
            metrics["test_acc"] = evaluate(trained, data, device=next(trained.parameters()).device, split="test")
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(folder, model=trained, arch=arch.to_dict(), input_shape=tuple(data.val_x.shape[1:]),
                            metrics=metrics)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    reference = build(arch.plain()) if latency_reference else None
    run_trial(model=model, data=data, train=train, probe=settings.probe, constraints=settings.constraints,
              device=settings.device, threads=settings.threads, report=report, reference=reference,
              probe_lock=settings.probe_lock)


@contextlib.contextmanager
def ray_runtime(*, num_cpus: int | None = None, address: str | None = None) -> Iterator[None]:
    """Ray for the search, quiet: with ``address`` (HOST:PORT of a running cluster) join it and only disconnect
    afterwards, never stopping it; without, start a local Ray with ``num_cpus`` and shut it down afterwards."""
    # One checkpoint per trial (its last epoch) makes Tune's "snapshotting too often" warning noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0 Ray prints nothing; ProgressPrinter talks
    # Save the experiment state (trials + searcher) at every controller step, not every >= 10 s: a driver killed
    # with SIGKILL then loses at most the step it was in. The state is small (tens of KB).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    # A candidate rejected by constraints.* reports its probe but no val_acc (it never trained); ASHA then leaves it
    # alone and the searcher tells it infeasible. Ray's strict check would instead end the whole search.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # address="local": a new Ray even when one runs here (ray.init() alone would join a cluster `ray start` made)
    where = ({"address": address} if address else
             {"address": "local", "num_cpus": num_cpus, "include_dashboard": False})
    ray.init(
        **where,
        log_to_driver=False,  # trial workers' stdout stays in Ray's logs; the driver prints ProgressPrinter lines
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    try:
        yield
    finally:
        ray.shutdown()  # a driver joined to a cluster only disconnects: the cluster's processes are not its own


def run_tuner(*, trainable: Callable[..., Any], resources: dict[str, float], experiment_dir: str,
              searcher: Searcher, scheduler: ASHAScheduler | None, num_samples: int, concurrency: int,
              callbacks: Sequence[tune.Callback]) -> tune.ResultGrid:
    """Run the search in ``experiment_dir`` (a folder or a URI, ``search.storage.join``); if it holds an earlier,
    interrupted run of it, resume that instead.

    Resuming restores the trials and the searcher; unfinished trials are restarted, finished and failed ones kept.
    Callbacks are this process's, not the pickled ones.
    """
    trainable = tune.with_resources(trainable, resources)
    if tune.Tuner.can_restore(experiment_dir):
        tuner = tune.Tuner.restore(experiment_dir, trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
        set_callbacks_of_restored_tuner(tuner, list(callbacks))
        return tuner.fit()
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=concurrency,
            reuse_actors=True,  # one worker process per slot for the whole search: no per-trial process start
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(name=split(experiment_dir)[1], storage_path=split(experiment_dir)[0],
                                  callbacks=list(callbacks), verbose=0),
    )
    return tuner.fit()


def _trial_dirname(trial: Any) -> str:
    """Trial folders named by trial id (Ray's default embeds the whole config in the name)."""
    return trial.trial_id
