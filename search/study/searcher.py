"""The Ray Tune searcher: an Optuna study in RDB storage, asked and told through the public APIs of both libraries.

Optuna (https://optuna.org) proposes architectures from ``SearchSpace.sample``; the study lives in an RDB storage
(SQLite by default), so it outlives the driver: resume reloads it by name, ``optuna-dashboard`` can watch it, and the
Pareto front comes from ``Study.best_trials`` (constraint-aware).

Why not Ray's ``OptunaSearch``: its multi-objective ``on_trial_complete`` tells a trial that raised or was stopped
early as COMPLETE with its partial values, and it has no hook for hard-budget constraints or for de-duplication;
changing that meant reading its private ``_ot_trials`` / ``_ot_study``. This class subclasses the public
``ray.tune.search.Searcher`` and uses Optuna's ask-and-tell interface instead, so no private attribute is read.

What Optuna is told (only trials that ran their full epoch budget count as finished):

- full budget: COMPLETE with (the score, the ranked latency) (the plan's ``score.objectives``);
- stopped early by ASHA: PRUNED, never COMPLETE with a partial accuracy;
- raised (including NaN loss, OOM): FAIL;
- rejected by a hard budget before training: COMPLETE with val_acc 0 and its measured latency, and a positive
  constraint violation (``Trial.set_constraint``), which TPE and NSGA-II rank below every feasible trial.

No architecture is trained twice: when the sampler proposes one whose canonical form (``backbones.canonical``) was
already proposed, the new Optuna trial is told the earlier trial's result (at once, or when the earlier one ends),
no Ray trial is started for it, and the sampler is asked again.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from backbones import ArchConfig, canonical
from search.outcomes import LATENCY_MS, OBJECTIVES, Outcome, trial_outcome
from search.samplers import SAMPLERS
from search.study.database import open_storage
from spaces import SearchSpace
from trials import Constraints

# Optuna user attributes on each study trial.
ARCH_ATTR = "arch"  # the ArchConfig as JSON
CANONICAL_ATTR = "canonical"  # its canonical form as JSON: the de-duplication key
RAY_TRIAL_ATTR = "ray_trial_id"  # the Ray trial that trains it (absent on duplicates)
DUPLICATE_ATTR = "duplicate_of"  # on a duplicate: the Optuna trial number whose result it reuses
CONTROL_ATTR = "control"  # on a control trial: its name (plain, se_r16, ...)
PROPOSAL_ATTR = "proposal"  # on a trial proposed from a fixed list (strategy=oneshot's picks): its index there
CUT_OFF_ATTR = "cut_off"  # True on a trial asked after Ray's last snapshot of a killed search: it never ran
MAX_DUPLICATES_IN_A_ROW = 200  # proposals that are all duplicates before the space is taken as exhausted


def study_directions(objectives: Mapping[str, str] = OBJECTIVES) -> list[str]:
    return ["maximize" if mode == "max" else "minimize" for mode in objectives.values()]


def open_study(*, storage: str | optuna.storages.BaseStorage, name: str, sampler: optuna.samplers.BaseSampler | None = None,
               objectives: Mapping[str, str] | None = None) -> optuna.Study:
    """Load (or create) the search's study in ``storage`` (an RDB URL such as ``sqlite:///optuna.db``, opened patiently:
    :func:`search.study.database.open_storage`), its objectives
    named after ``objectives`` (the plan's ``score.objectives``: val_acc or val_miou, and the ranked latency), so
    optuna-dashboard labels its axes by name, not 0 and 1. ``None``: as the study has them (a new one: ``OBJECTIVES``)."""
    study = optuna.create_study(storage=open_storage(storage), study_name=name, sampler=sampler,
                                directions=study_directions(objectives or OBJECTIVES), load_if_exists=True)
    names = list(objectives) if objectives else (None if study.metric_names else list(OBJECTIVES))
    if names and study.metric_names != names:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


class StudySearcher(Searcher):
    """Ray Tune searcher over an Optuna study (see the module docstring). Picklable: the study is reopened by name."""

    def __init__(self, *, space: SearchSpace, base: ArchConfig, storage: str, study_name: str, sampler: str,
                 seed: int, trials: int, full_epochs: int, constraints: Constraints = Constraints(),
                 controls: Mapping[str, ArchConfig] | None = None, proposals: Sequence[ArchConfig] = (),
                 announce: Callable[[str], None] = print, objectives: Mapping[str, str] = OBJECTIVES) -> None:
        """``objectives``: the plan's ``score.objectives`` (the score, max; the ranked latency, min), in the order
        Optuna is told them. ``controls``: reference architectures (name -> ArchConfig) proposed first, before the sampler's.
        ``proposals``: architectures proposed next, in order, before the sampler's own (strategy=oneshot's picks);
        each is a study trial with its parameters, so the sampler learns from it."""
        super().__init__()
        self.controls = dict(controls or {})
        self.proposals = list(proposals)
        self.space, self.base = space, base
        self.storage, self.study_name = storage, study_name
        self.sampler_name, self.seed, self.trials = sampler, seed, trials
        self.full_epochs, self.constraints = full_epochs, constraints
        self.announce = announce
        self.objectives = dict(objectives)
        self.numbers: dict[str, int] = {}  # Ray trial id -> Optuna trial number
        self._study: optuna.Study | None = None
        self._rdb: optuna.storages.BaseStorage | None = None

    # --- the study --------------------------------------------------------------------------------------------
    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._rdb = open_storage(self.storage)
            self._study = open_study(storage=self._rdb, name=self.study_name, objectives=self.objectives)
            # A resumed study continues with a sampler seeded past what it has already drawn.
            self._study.sampler = SAMPLERS[self.sampler_name](seed=self.seed + len(self._study.trials),
                                                              trials=self.trials)
        return self._study

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None, "_rdb": None}  # the storage engine is not picklable; reopened on use

    # --- Ray's Searcher interface -----------------------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # the objectives are self.objectives; the space is ours

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Ask Optuna for an architecture not proposed before; duplicates are told the earlier result."""
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        ran = [t for t in trials.values() if DUPLICATE_ATTR not in t.user_attrs and CUT_OFF_ATTR not in t.user_attrs]
        seen = {t.user_attrs[CANONICAL_ATTR]: t.number for t in ran if CANONICAL_ATTR in t.user_attrs}
        done = {t.user_attrs[CONTROL_ATTR] for t in ran if CONTROL_ATTR in t.user_attrs}
        if pending := [name for name in self.controls if name not in done]:
            return self._suggest_control(trial_id, pending[0])
        proposed = {t.user_attrs[PROPOSAL_ATTR] for t in ran if PROPOSAL_ATTR in t.user_attrs}
        if waiting := [i for i in range(len(self.proposals)) if i not in proposed]:
            return self._suggest_proposal(trial_id, waiting[0])
        for _ in range(MAX_DUPLICATES_IN_A_ROW):
            trial = self.study.ask()
            arch = self.space.sample(trial, base=self.base)
            key = canonical(arch).to_json()
            trial.set_user_attr(ARCH_ATTR, arch.to_json())
            trial.set_user_attr(CANONICAL_ATTR, key)
            if key not in seen:
                trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
                self.numbers[trial_id] = trial.number
                return {"arch": arch.to_dict(), "optuna_trial": trial.number}
            original = self.study.get_trials(deepcopy=False)[seen[key]]
            trial.set_user_attr(DUPLICATE_ATTR, original.number)
            self.announce(f"  proposal {trial.number + 1} is trial {original.user_attrs.get(RAY_TRIAL_ATTR, '?')} "
                          f"again ({arch}): reusing its result, not training it")
            if original.state.is_finished():
                self._tell_like(trial.number, original)
        self.announce(f"  the sampler proposed {MAX_DUPLICATES_IN_A_ROW} already-trained architectures in a row: "
                      f"the space looks exhausted; no more trials")
        return Searcher.FINISHED

    def _suggest_control(self, trial_id: str, name: str) -> dict[str, Any]:
        """A control as a study trial: with the space's parameters when the space can draw it (so the sampler
        learns from it), else as a trial without parameters (still in the study, so on the front)."""
        arch = self.controls[name]
        if (params := self.space.params_of(arch)) is not None:
            self.study.enqueue_trial(params)
        trial = self.study.ask()
        if params is not None:
            arch = self.space.sample(trial, base=self.base)  # draws exactly the enqueued parameters
        trial.set_user_attr(CONTROL_ATTR, name)
        trial.set_user_attr(ARCH_ATTR, arch.to_json())
        trial.set_user_attr(CANONICAL_ATTR, canonical(arch).to_json())
        trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        self.numbers[trial_id] = trial.number
        return {"arch": arch.to_dict(), "optuna_trial": trial.number, "control": name, "label": f"control {name}"}

    def _suggest_proposal(self, trial_id: str, index: int) -> dict[str, Any]:
        """Proposal ``index`` as a study trial with its parameters (enqueued, then asked: the sampler draws them)."""
        self.study.enqueue_trial(self.space.params_of(self.proposals[index]))
        trial = self.study.ask()
        arch = self.space.sample(trial, base=self.base)
        trial.set_user_attr(PROPOSAL_ATTR, index)
        trial.set_user_attr(ARCH_ATTR, arch.to_json())
        trial.set_user_attr(CANONICAL_ATTR, canonical(arch).to_json())
        trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)
        self.numbers[trial_id] = trial.number
        return {"arch": arch.to_dict(), "optuna_trial": trial.number}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna how the trial ended (module docstring), then every duplicate that waited for it."""
        number = self.numbers.get(trial_id)
        if number is None or self.study.get_trials(deepcopy=False)[number].state.is_finished():
            return
        result = result or {}
        outcome = trial_outcome(result, full_epochs=self.full_epochs, error=error)
        if self.constraints.active and outcome is not Outcome.FAILED and LATENCY_MS in result:
            for key, violation in self.constraints.violations(result).items():
                self._set_constraint(number, key, violation)
        if outcome is Outcome.FAILED:
            self.study.tell(number, state=TrialState.FAIL)
        elif outcome is Outcome.REJECTED:
            # never trained: score 0, its probed latency; in the objectives' order
            self.study.tell(number, [0.0 if mode == "max" else float(result[metric])
                                     for metric, mode in self.objectives.items()])
        elif outcome is Outcome.EARLY_STOPPED:
            self.study.tell(number, state=TrialState.PRUNED)
        else:
            self.study.tell(number, [float(result[metric]) for metric in self.objectives])
        finished = self.study.get_trials(deepcopy=False)[number]
        for waiting in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if waiting.user_attrs.get(DUPLICATE_ATTR) == number:
                self._tell_like(waiting.number, finished)

    def save(self, checkpoint_path: str) -> None:
        """Ray saves this with each experiment snapshot: which Ray trials it knew then (the rest is in the study)."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"numbers": dict(self.numbers)}, f)

    def restore(self, checkpoint_path: str) -> None:
        """Resume: Ray trials it knew at the last snapshot keep their Optuna trials; Optuna trials asked after that
        snapshot (their Ray trials were never recorded, so they never run) are told FAIL, and duplicates of them
        are re-proposed later."""
        with open(checkpoint_path, "rb") as f:
            self.numbers = pickle.load(f)["numbers"]
        known = set(self.numbers.values())
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number not in known and DUPLICATE_ATTR not in trial.user_attrs:
                self._live(trial.number).set_user_attr(CUT_OFF_ATTR, True)
                self.study.tell(trial.number, state=TrialState.FAIL)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            original = trial.user_attrs.get(DUPLICATE_ATTR)
            if original is not None and self.study.get_trials(deepcopy=False)[original].state.is_finished():
                self._tell_like(trial.number, self.study.get_trials(deepcopy=False)[original])

    # --- helpers ----------------------------------------------------------------------------------------------
    def _tell_like(self, number: int, original: optuna.trial.FrozenTrial) -> None:
        """Tell trial ``number`` exactly what ``original`` was told (values, state, constraint violations)."""
        for key, value in original.constraints.items():
            self._set_constraint(number, key, value)
        if original.state == TrialState.COMPLETE:
            self.study.tell(number, original.values)
        else:
            self.study.tell(number, state=original.state)

    def _set_constraint(self, number: int, key: str, value: float) -> None:
        self._live(number).set_constraint(key, value)

    def _live(self, number: int) -> optuna.Trial:
        """A handle on running trial ``number`` (also one a previous driver asked), through public storage calls."""
        self.study  # opens the storage
        storage = self._rdb
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(self.study_name),
                                                                   number)
        return optuna.Trial(self.study, trial_id)
