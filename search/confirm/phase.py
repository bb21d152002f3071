"""The confirmation phase: the front and the controls retrained from scratch on fresh seeds, judged on held-out data.

The search selects on ``val_acc`` of one seed, so its front is optimistic (the winners of a noisy draw). After it,
the most accurate ``confirm.top_k`` front architectures and every control (the plain backbone first) are trained
again through the same trial path (:func:`search.execution.trainable.train_architecture`, as a second Ray Tune experiment in
``runs/NAME/confirm``, so a killed confirmation resumes where it stopped), each with ``confirm.seeds`` seeds that the
search did not use, and scored on the dataset's **official test split**, which the search never saw. Then each
architecture's latency is measured again with nothing else running, and :mod:`search.confirm.statistics` gives
``test_acc`` mean ± std, 95% intervals, the paired difference to the plain backbone and a verdict.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from backbones import ArchConfig, canonical
from search.confirm.statistics import Confirmed, confirmation_sentence, confirmation_statistics, write_confirmed_csv
from search.execution import storage
from search.execution.alone import measure_alone
from search.execution.progress import ProgressPrinter
from search.execution.trainable import train_architecture
from search.execution.tuner import run_tuner
from search.outcomes import CONFIRM_ROLE, CONFIRM_TAG, CONFIRMED_CSV, SEED_TAG, VERDICT_TAG, test_split_text
from search.settings.plan import SearchPlan, TrialSettings
from search.tracking.parent import SearchRun, ended_trials
from search.tracking.trial_runs import MlflowTrialCallback
from spaces import PLAIN_CONTROL
from trials import ProbeConfig, TensorData

# The per-trial probe is not what confirmation reports (latency is re-measured alone afterwards): keep it minimal.
_NO_PROBE = ProbeConfig(runs=1, warmup=0, batch=0)


@dataclass(frozen=True)
class Candidate:
    """An architecture to confirm: a control (by its name) or a front trial (by its Ray trial id)."""

    name: str
    arch: ArchConfig
    control: bool


def pick_candidates(*, front: Sequence[Mapping[str, Any]], controls: Mapping[str, ArchConfig],
                    top_k: int) -> list[Candidate]:
    """Every control (the plain backbone first), then the ``top_k`` most accurate front trials that are not
    controls (``front`` rows: ``trial_id``, ``val_acc``, ``arch_json`` (the ArchConfig as a dict), ``control``)."""
    picked = [Candidate(name=name, arch=arch, control=True) for name, arch in controls.items()]
    known = {canonical(c.arch) for c in picked}
    for row in sorted(front, key=lambda r: -r["val_acc"]):
        arch = ArchConfig.from_dict(row["arch_json"])
        if len(picked) - len(controls) >= top_k:
            break
        if row.get("control") or canonical(arch) in known:
            continue
        known.add(canonical(arch))
        picked.append(Candidate(name=row["trial_id"], arch=arch, control=False))
    return picked


def confirmation_seeds(*, search_seed: int, count: int) -> list[int]:
    """Seeds the search did not train with (its trials used ``search_seed``): a front trial's own weights won its
    selection on val_acc, so re-scoring them would carry that luck into the confirmed figure."""
    return [search_seed + 1 + i for i in range(count)]


def confirm_front(plan: SearchPlan, *, search: SearchRun, front: Sequence[Mapping[str, Any]],
                  controls: Mapping[str, ArchConfig]) -> tuple[list[Candidate], tune.ResultGrid]:
    """The confirmation runs: every control and the ``confirm.top_k`` most accurate front architectures, each trained
    from scratch on fresh seeds and scored on the test split, one nested MLflow run each; needs Ray running."""
    candidates = pick_candidates(front=front, controls=controls, top_k=plan.confirm_top_k)
    seeds = confirmation_seeds(search_seed=plan.seed, count=plan.confirm_seeds)
    print(f"\nConfirmation: {len(candidates)} architectures ({len(controls)} controls and "
          f"{len(candidates) - len(controls)} from the front) x {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
          f"trained from scratch and scored on {test_split_text(len(plan.data.test_y))}", flush=True)
    tracker = MlflowTrialCallback(client=search.client, experiment=search.experiment_id, parent_run_id=search.run_id,
                                  search_name=plan.name, full_epochs=plan.budget.epochs, existing=search.existing,
                                  role=CONFIRM_ROLE)
    confirming = search.existing_runs(role=CONFIRM_ROLE)
    printer = ProgressPrinter(total_trials=len(candidates) * len(seeds), full_epochs=plan.budget.epochs,
                              seen=confirming.keys(), ended=ended_trials(confirming), show_latency=False)
    results = run_confirmation(candidates=candidates, seeds=seeds, data=plan.data, settings=plan.trial_settings,
                               experiment_dir=storage.join(plan.storage, plan.name, CONFIRM_ROLE),
                               resources=plan.per_trial, concurrency=plan.concurrency, callbacks=[tracker, printer])
    return candidates, results


def run_confirmation(*, candidates: Sequence[Candidate], seeds: Sequence[int], data: TensorData,
                     settings: TrialSettings, experiment_dir: str, resources: Mapping[str, float],
                     concurrency: int, callbacks: Sequence[tune.Callback]) -> tune.ResultGrid:
    """Train every (candidate, seed) for the full budget and score it on the test split (a Ray Tune experiment in
    ``experiment_dir``; a rerun after a crash resumes it, finished runs are not trained again). Needs Ray running."""
    configs = [{"arch": c.arch.to_dict(), "seed": seed, "test": True, "label": f"confirm {c.name} seed {seed}",
                "tags": {CONFIRM_TAG: c.name, SEED_TAG: str(seed)}}
               for c in candidates for seed in seeds]
    trainable = tune.with_parameters(train_architecture, data=data,
                                     settings=dataclasses.replace(settings, probe=_NO_PROBE))
    return run_tuner(trainable=trainable, resources=dict(resources), experiment_dir=experiment_dir,
                     searcher=ListSearcher(configs), scheduler=None,
                     num_samples=len(configs), concurrency=concurrency, callbacks=callbacks)


class ListSearcher(Searcher):
    """Proposes the given configs in order, once each. Its state, saved with each experiment snapshot, is how many
    it gave. Ray's own ways do not fit: ``BasicVariantGenerator(points_to_evaluate=...)`` only overrides keys that the
    param space declares (a nested ``arch`` dict raises KeyError) and ignores ``max_concurrent_trials``; a grid search
    nests each config under one key. This keeps the trial config flat, as the search's is."""

    def __init__(self, configs: Sequence[dict[str, Any]]) -> None:
        super().__init__()
        self.configs = list(configs)
        self.given = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.given >= len(self.configs):
            return Searcher.FINISHED
        self.given += 1
        return dict(self.configs[self.given - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"given": self.given}))

    def restore(self, checkpoint_path: str) -> None:
        self.given = json.loads(Path(checkpoint_path).read_text())["given"]


def summarise_confirmation(results: tune.ResultGrid, *, candidates: Sequence[Candidate],
                           latency_ms: Mapping[str, float]) -> list[Confirmed]:
    """The confirmed table: test_acc per candidate and seed from the finished runs (a failed run is left out)."""
    test_acc: dict[str, dict[int, float]] = {c.name: {} for c in candidates}
    for result in results:
        metrics = result.metrics or {}
        if result.error is None and "test_acc" in metrics:
            config = result.config
            test_acc[config["tags"][CONFIRM_TAG]][int(config["seed"])] = float(metrics["test_acc"])
    return confirmation_statistics(test_acc, reference=PLAIN_CONTROL,
                                   arch_text={c.name: str(c.arch) for c in candidates}, latency_ms=latency_ms)


def finish_confirmation(plan: SearchPlan, *, candidates: Sequence[Candidate], results: tune.ResultGrid) -> list[Confirmed]:
    """The confirmed table: each candidate's latency measured alone (call it once no trial trains), then the
    statistics of its test_acc over the seeds."""
    print("Measuring the latency of each confirmed architecture alone ...", flush=True)
    latency = measure_alone({c.name: c.arch for c in candidates}, probe=plan.trial_settings.probe,
                            input_shape=plan.data.image_shape, device=plan.hardware, threads=plan.budget.cpu_per_trial)
    return summarise_confirmation(results, candidates=candidates, latency_ms=latency)


def record_confirmation(search: SearchRun, rows: Sequence[Confirmed]) -> str:
    """Put the confirmed table on the parent run (confirmation/confirmed.csv, the verdict tag, the mean test_acc per
    architecture as metrics); returns the verdict sentence."""
    verdict = confirmation_sentence(rows)
    with tempfile.TemporaryDirectory() as folder:
        search.log_artifacts([write_confirmed_csv(rows, Path(folder) / CONFIRMED_CSV)], folder="confirmation")
    search.client.set_tag(search.run_id, VERDICT_TAG, verdict)
    search.log_metrics({f"confirmed.{row.name}.test_acc_mean": row.mean for row in rows if row.mean is not None})
    return verdict
