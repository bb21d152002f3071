"""Ray Tune wiring: the Ray runtime and the Tuner (new or restored) over the search's trainable
(:mod:`search.execution.trainable`), searcher (:class:`search.study.StudySearcher`) and scheduler
(:mod:`search.execution.scheduler`)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from search.execution.ray_adapter import set_callbacks_of_restored_tuner
from search.execution.signals import stop_on_signals
from search.execution.storage import split


@contextlib.contextmanager
def ray_runtime(*, num_cpus: int | None = None, num_gpus: float | None = None,
                address: str | None = None) -> Iterator[None]:
    """Ray for the search, quiet: with ``address`` (HOST:PORT of a running cluster) join it and only disconnect
    afterwards, never stopping it; without, start a local Ray with ``num_cpus`` and ``num_gpus`` (None: the GPUs
    Ray detects) and shut it down afterwards."""
    # One checkpoint per trial (its last epoch) makes Tune's "snapshotting too often" warning noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0 Ray prints nothing; ProgressPrinter talks
    # Save the experiment state (trials + searcher) at every controller step, not every >= 10 s: a driver killed
    # with SIGKILL then loses at most the step it was in. The state is small (tens of KB).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    # A candidate rejected by constraints.* reports its probe but no val_acc (it never trained); ASHA then leaves it
    # alone and the searcher tells it infeasible. Ray's strict check would instead end the whole search.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Ctrl-C raises KeyboardInterrupt in the driver, which stops the search (search.run exits 130; the state saved
    # at every step makes the rerun resume). Tune's own SIGINT handler would instead end only the running Tuner.fit,
    # and the driver would go on to confirm the front of a search cut short.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if not address:  # a Ray this search starts and stops: Ray's notice that it turned on token auth says nothing here
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    # address="local": a new Ray even when one runs here (ray.init() alone would join a cluster `ray start` made)
    where = ({"address": address} if address else
             {"address": "local", "num_cpus": num_cpus, "num_gpus": num_gpus, "include_dashboard": False})
    ray.init(
        **where,
        log_to_driver=False,  # trial workers' stdout stays in Ray's logs; the driver prints ProgressPrinter lines
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    stop_on_signals()  # again: Ray's core worker replaced the SIGTERM handler with its own (search.execution.signals)
    try:
        yield
    finally:
        ray.shutdown()  # a driver joined to a cluster only disconnects: the cluster's processes are not its own


def run_tuner(*, trainable: Callable[..., Any], resources: dict[str, float], experiment_dir: str,
              searcher: Searcher, scheduler: TrialScheduler | None, num_samples: int, concurrency: int,
              callbacks: Sequence[tune.Callback]) -> tune.ResultGrid:
    """Run the search in ``experiment_dir`` (a folder or a URI, ``search.execution.storage.join``); if it holds an earlier,
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
