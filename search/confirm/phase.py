"""The confirmation phase: the front and the controls retrained from scratch on fresh seeds, judged on held-out data.

The search selects on ``val_acc`` of one seed, so its front is optimistic (the winners of a noisy draw). After it,
the most accurate ``confirm.top_k`` front architectures and every control (the plain backbone first) are trained
again through the same trial path (:func:`search.execution.trainable.train_architecture`, as a second Ray Tune experiment in
``runs/NAME/confirm``, so a killed confirmation resumes where it stopped), on seeds that the search did not use, at
the confirmation's budget (``budget.confirm_epochs`` and ``budget.confirm_train_size``: the real training, when the
search ran a cheaper proxy of it), and scored on the dataset's **official test split**, which the search never saw.
Seeds are added in rounds (``confirm.seeds`` first, up to ``confirm.max_seeds``) until every interval of the
difference to the plain backbone is within ``confirm.resolution`` (the sequential rule of
:mod:`search.confirm.sequential`). Then each architecture's latency is measured again with nothing else running, and
:mod:`search.confirm.statistics` gives ``test_acc`` mean ± std, intervals, the paired difference to the plain backbone,
a verdict that states the resolution reached, and how well the search's val_acc ranked the confirmed test_acc.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from backbones import ArchConfig, canonical
from devices import LatencyPredictor, is_this_machine, measure_here
from search.confirm.sequential import Look, SequentialDesign, look
from search.confirm.statistics import (Confirmed, confirmation_sentence, confirmation_statistics, paired_difference,
                                       rank_agreement, write_confirmed_csv)
from search.execution import storage
from search.execution.alone import measure_alone
from search.execution.progress import ProgressPrinter
from search.execution.trainable import train_architecture
from search.execution.tuner import run_tuner
from search.log import say, tell
from search.outcomes import (ACCURACY, CONFIRM_ROLE, CONFIRM_TAG, CONFIRMED_CSV, SEED_TAG, TEST_ACC, VERDICT_TAG,
                             Score, test_split_text)
from search.records import FinishedTrial
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
    search_val_acc: float | None = None  # its val_acc in the search (None: the search did not train it in full)


def pick_candidates(*, front: Sequence[FinishedTrial], controls: Mapping[str, ArchConfig], top_k: int,
                    searched: Sequence[FinishedTrial] = ()) -> list[Candidate]:
    """Every control (the plain backbone first), then the ``top_k`` most accurate front trials that are not among
    them (then other full-budget trials, when the front has fewer). ``searched``: every full-budget trial of the
    search, where the controls' val_acc is read."""
    control_val_acc = {row.control: row.score for row in searched if row.control}
    picked = [Candidate(name=name, arch=arch, control=True, search_val_acc=control_val_acc.get(name))
              for name, arch in controls.items()]
    known = {canonical(c.arch) for c in picked}
    # the front first; when it holds too few (the plain backbone alone can be the whole front), the most accurate
    # other full-budget trials, so that the verdict always compares a placement with plain
    on_front = {row.trial_id for row in front}
    behind = [row for row in searched if row.trial_id not in on_front]
    for row in [*sorted(front, key=lambda r: -r.score), *sorted(behind, key=lambda r: -r.score)]:
        if len(picked) - len(controls) >= top_k:
            break
        if row.control in controls or canonical(row.arch) in known:  # a control not retrained as one may be a pick
            continue
        known.add(canonical(row.arch))
        picked.append(Candidate(name=row.control or row.trial_id, arch=row.arch, control=False,
                                search_val_acc=row.score))
    return picked


def confirmation_seeds(*, search_seed: int, count: int) -> list[int]:
    """Seeds the search did not train with (its trials used ``search_seed``): a front trial's own weights won its
    selection on val_acc, so re-scoring them would carry that luck into the confirmed figure."""
    return [search_seed + 1 + i for i in range(count)]


def confirm_design(plan: SearchPlan) -> SequentialDesign:
    """When the plan's confirmation looks and stops: confirm.seeds, confirm.max_seeds, confirm.resolution."""
    return SequentialDesign(resolution=plan.confirm.resolution, min_seeds=plan.confirm.seeds,
                            max_seeds=plan.confirm.max_seeds)


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation trained: its candidates, every finished (candidate, seed) result, the look it stopped at."""

    candidates: list[Candidate]
    results: list[Any]  # ray.tune Result objects of every round
    stopped: Look


def confirmed_controls(controls: Mapping[str, ArchConfig], *, which: str) -> dict[str, ArchConfig]:
    """The controls the confirmation retrains (``confirm.controls``): all of them, or the plain backbone only."""
    return {name: arch for name, arch in controls.items() if which == "all" or name == PLAIN_CONTROL}


def confirm_front(plan: SearchPlan, *, search: SearchRun, front: Sequence[FinishedTrial],
                  controls: Mapping[str, ArchConfig], searched: Sequence[FinishedTrial] = ()) -> Confirmation | None:
    """The confirmation runs: every control and the ``confirm.top_k`` most accurate front architectures, trained from
    scratch on fresh seeds at the confirmation's budget (``plan.confirm.epochs`` on ``plan.confirm.data``) and scored
    on the test split, one nested MLflow run each; needs Ray running. ``searched``: the search's full-budget trials
    (their val_acc goes with each candidate, for the rank agreement).

    Seeds come in rounds up to each look of the sequential design (search.confirm.sequential): after a round every
    candidate's interval of the paired difference to the plain backbone is formed, and the phase stops once every one
    is within ``confirm.resolution`` or at ``confirm.max_seeds``. Each round is its own Ray Tune experiment
    (``confirm``, ``confirm-seeds-6``, ...), so a killed confirmation resumes with its finished seeds kept.
    """
    controls = confirmed_controls(controls, which=plan.confirm.controls)
    candidates = pick_candidates(front=front, controls=controls, top_k=plan.confirm.top_k, searched=searched)
    if len(candidates) < 2:  # the plain backbone alone: no difference to judge
        tell("\nConfirmation skipped: no full-budget architecture besides the plain backbone to compare with it.")
        return None
    design = confirm_design(plan)
    seeds = confirmation_seeds(search_seed=plan.seed, count=design.max_seeds)
    data = plan.confirm.data
    tell(f"\nConfirmation: {len(candidates)} architectures ({len(controls)} controls and "
         f"{len(candidates) - len(controls)} from the front), trained from scratch {confirm_budget_text(plan)} on "
         f"{design.min_seeds} to {design.max_seeds} seeds (looks at {', '.join(map(str, design.looks))}) until every "
         f"95% interval of the difference to the plain backbone is within ±{100 * design.resolution:.1f} {plan.score.points()}; "
         f"scored on {test_split_text(len(data.test_y))}")
    train = replace(plan.trial_settings.train, epochs=plan.confirm.epochs)
    settings = replace(plan.trial_settings, train=train)  # the search's, as calibrated, at the confirmation's length
    tracker = MlflowTrialCallback(client=search.client, experiment=search.experiment_id, parent_run_id=search.run_id,
                                  search_name=plan.name, full_epochs=plan.confirm.epochs, existing=search.existing,
                                  role=CONFIRM_ROLE)
    results: list[Any] = []
    done = 0
    for seeds_at_look in design.looks:
        new = seeds[done:seeds_at_look]
        round_seeds = {str(s) for s in new}
        confirming = {key: run for key, run in search.existing_runs(role=CONFIRM_ROLE).items()
                      if run.data.tags.get(SEED_TAG) in round_seeds}
        printer = ProgressPrinter(total_trials=len(candidates) * len(new), full_epochs=plan.confirm.epochs,
                                  seen=confirming.keys(), ended=ended_trials(confirming), latency=None,
                                  metrics=(plan.score.val, *plan.score.also_val))
        tell(f"Confirmation seeds {', '.join(map(str, new))} ({len(candidates) * len(new)} runs)")
        results.extend(run_confirmation(
            candidates=candidates, seeds=new, data=data, settings=settings,
            experiment_dir=storage.join(plan.execution.storage, plan.name, round_folder(first_seed_index=done)),
            resources=plan.per_trial, concurrency=plan.execution.concurrency, callbacks=[tracker, printer]))
        done = seeds_at_look
        stopped = look(paired_differences(results, candidates=candidates, metric=plan.score.test), design=design)
        widest = max((i.half_width for i in stopped.intervals.values() if i.half_width is not None), default=None)
        tell(f"Look at {stopped.seeds} seeds: widest interval ±"
             f"{'n/a' if widest is None else f'{100 * widest:.1f}'} {plan.score.points()} (asked ±{100 * design.resolution:.1f})"
             f"{': ' + stopped.reason if stopped.stop else ', adding seeds'}")
        if stopped.stop:
            return Confirmation(candidates=candidates, results=results, stopped=stopped)
    raise AssertionError("unreachable: the last look always stops")


def confirms_larger(plan: SearchPlan) -> bool:
    """Whether the confirmation trains more epochs or images than the search (never fewer: spaces.Budget checks)."""
    return plan.confirm.data is not None and (plan.confirm.epochs, len(plan.confirm.data.train_y)) != (
        plan.budget.epochs, len(plan.data.train_y))


def confirm_budget_text(plan: SearchPlan) -> str:
    """``at 20 epochs on 55,000 images (the search: 10 epochs on 55,000)``, or ``... (the search's budget)``."""
    epochs, images = plan.budget.epochs, len(plan.data.train_y)
    search = f"the search: {epochs} epochs on {images:,}" if confirms_larger(plan) else "the search's budget"
    return f"at {plan.confirm.epochs} epochs on {len(plan.confirm.data.train_y):,} images ({search})"


def round_folder(*, first_seed_index: int) -> str:
    """The Ray Tune experiment of a confirmation round: ``confirm`` for the first look's seeds, then
    ``confirm-seeds-K`` for the round whose first seed is the K+1-th."""
    return CONFIRM_ROLE if first_seed_index == 0 else f"{CONFIRM_ROLE}-seeds-{first_seed_index + 1}"


def test_acc_by_candidate(results: Sequence[Any], *, candidates: Sequence[Candidate],
                          metric: str = TEST_ACC) -> dict[str, dict[int, float]]:
    """name -> {seed: test score} from the finished runs (a failed run is left out); ``metric``: the score's test
    metric (test_acc; test_miou for segmentation)."""
    test_acc: dict[str, dict[int, float]] = {c.name: {} for c in candidates}
    for result in results:
        metrics = result.metrics or {}
        if result.error is None and metric in metrics:
            config = result.config
            name = config["tags"][CONFIRM_TAG]
            if name not in test_acc:  # a restored experiment made for another candidate list
                raise RuntimeError(
                    f"confirmation run {config.get('label', name)!r} trained candidate {name!r}, which is not among "
                    f"this search's candidates ({', '.join(test_acc)}): its confirmation folders (runs/NAME/confirm*) "
                    f"were made for another front; move them away and rerun to confirm this front anew")
            test_acc[name][int(config["seed"])] = float(metrics[metric])
    return test_acc


def paired_differences(results: Sequence[Any], *, candidates: Sequence[Candidate],
                       metric: str = TEST_ACC) -> dict[str, list[float]]:
    """name -> test score minus the plain backbone's, on each seed both finished, for every candidate but plain."""
    test_acc = test_acc_by_candidate(results, candidates=candidates, metric=metric)
    plain = test_acc[PLAIN_CONTROL]
    return {name: list(paired_difference(by_seed, plain).values())
            for name, by_seed in test_acc.items() if name != PLAIN_CONTROL}


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


def summarise_confirmation(confirmation: Confirmation, *, latency_ms: Mapping[str, float],
                           design: SequentialDesign, metric: str = TEST_ACC) -> list[Confirmed]:
    """The confirmed table: test_acc per candidate and seed from the finished runs, each difference to the plain
    backbone at the confidence the design gives the look it stopped at (simultaneous 95% over looks and candidates)."""
    others = len(confirmation.candidates) - 1
    level = 1 - design.look_alpha(confirmation.stopped.seeds, candidates=others)
    return confirmation_statistics(test_acc_by_candidate(confirmation.results, candidates=confirmation.candidates,
                                                         metric=metric),
                                   reference=PLAIN_CONTROL, diff_confidence=level, latency_ms=latency_ms,
                                   arch_text={c.name: str(c.arch) for c in confirmation.candidates},
                                   search_val_acc={c.name: c.search_val_acc for c in confirmation.candidates
                                                   if c.search_val_acc is not None})


def finish_confirmation(plan: SearchPlan, *, confirmation: Confirmation) -> list[Confirmed]:
    """The confirmed table: each candidate's latency measured alone (call it once no trial trains), then the
    statistics of its test_acc over the seeds."""
    tell("Measuring the latency of each confirmed architecture alone ...")
    archs = {c.name: c.arch for c in confirmation.candidates}
    alone = dict(input_shape=plan.data.image_shape, device=plan.hardware, threads=plan.budget.cpu_per_trial)
    probe = plan.trial_settings.probe
    latency = measure_alone(archs, probe=replace(probe, runtime="torch"), **alone)
    rows = summarise_confirmation(confirmation, latency_ms=latency, design=confirm_design(plan),
                                  metric=plan.score.test)
    rows = _with_target_latency(rows, archs=archs, predictor=plan.trial_settings.latency_predictor)
    if plan.hardware != "cpu" or probe.precision != "fp32":
        return rows  # ONNX Runtime's CPU provider times fp32 CPU models only
    onnx = measure_alone(archs, probe=replace(probe, runtime="onnxruntime", channels_last=False), **alone)
    return [replace(row, latency_onnxruntime_ms=onnx.get(row.name)) for row in rows]


def _with_target_latency(rows: Sequence[Confirmed], *, archs: Mapping[str, ArchConfig],
                         predictor: LatencyPredictor | None) -> list[Confirmed]:
    """With ``latency.table``: each row's latency predicted for the table's device and, when that device is this
    machine, timed here as the table was (devices.measure_here)."""
    if predictor is None:
        return list(rows)
    measured: dict[str, float] = {}
    if is_this_machine(predictor.table):
        tell(f"The latency table was measured on this machine: timing the confirmed architectures as its rows were "
             f"(ONNX Runtime, {predictor.table.threads} thread(s), batch {predictor.table.batch}) ...")
        measured = measure_here(predictor.table, archs, log=say)
    return [replace(row, latency_target_ms=predictor.predict(archs[row.name]),
                    latency_target_measured_ms=measured.get(row.name)) for row in rows]


def record_confirmation(search: SearchRun, rows: Sequence[Confirmed], *, resolution: float,
                        score: Score = ACCURACY) -> str:
    """Put the confirmed table on the parent run (confirmation/confirmed.csv, the verdict tag, the mean test_acc per
    architecture and the rank agreement with the search, confirm.rank_n and confirm.rank_tau when defined, as
    metrics); returns the verdict sentence, which states the resolution reached."""
    verdict = confirmation_sentence(rows, resolution=resolution, unit=score.points())
    with tempfile.TemporaryDirectory() as folder:
        csv_path = write_confirmed_csv(rows, Path(folder) / CONFIRMED_CSV, val=score.val, test=score.test)
        search.log_artifacts([csv_path], folder="confirmation")
    search.client.set_tag(search.run_id, VERDICT_TAG, verdict)
    search.log_metrics({f"confirmed.{row.name}.{score.test}_mean": row.mean for row in rows if row.mean is not None})
    agreement = rank_agreement(rows)
    search.log_metrics({"confirm.rank_n": agreement.n,
                        **({"confirm.rank_tau": agreement.tau} if agreement.tau is not None else {})})
    return verdict
