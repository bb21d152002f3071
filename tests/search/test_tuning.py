"""The searcher: every sampler proposes buildable ArchConfigs; a trial stopped early reaches Optuna as PRUNED."""

from __future__ import annotations

import optuna
import pytest

from backbones import build
from search.tuning import SAMPLERS, make_searcher
from trials.constraints import Constraints
from spaces import load_space

FULL = 3


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_sampler_proposes_archs_and_learns_only_from_full_budget_trials(sampler: str) -> None:
    space = load_space("fashion_attention")
    budget = space.budgets["cpu"]
    searcher = make_searcher(space=space, sampler=sampler, seed=0, trials=8, full_epochs=FULL,
                             arch_fields={"backbone": budget.backbone, "in_chans": 1, "num_classes": 10,
                                          "backbone_kwargs": dict(budget.backbone_kwargs)})
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        arch = config["arch"]
        assert arch["backbone"] == budget.backbone and len(arch["stages"]) == space.num_stages
        assert config["arch"]["stages"][0]["attn"] in space.stages[0].types
        if i == 0:
            build(arch)  # the ArchConfig the searcher hands to trials is buildable
        epoch = FULL if i % 2 == 0 else 1  # odd trials: stopped by ASHA after one epoch
        searcher.on_trial_complete(f"t{i}", result={"val_acc": 0.5 + i / 100, "latency_ms": 1.0 + i, "epoch": epoch})
    states = [t.state for t in searcher._ot_study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4
    assert states.count(optuna.trial.TrialState.PRUNED) == 4
    complete = [t for t in searcher._ot_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.values[0] in (0.5, 0.52, 0.54, 0.56) for t in complete)  # partial accuracies never told


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_failed_trials_are_told_fail_and_rejected_ones_infeasible(sampler: str) -> None:
    """A trial that raised is FAIL even when it had reported (Ray would tell its partial values as COMPLETE); a
    trial over a hard budget is COMPLETE with a positive constraint violation, so the sampler ranks it infeasible."""
    space = load_space("fashion_attention")
    budget = space.budgets["cpu"]
    searcher = make_searcher(space=space, sampler=sampler, seed=0, trials=6, full_epochs=FULL,
                             arch_fields={"backbone": budget.backbone, "in_chans": 1, "num_classes": 10,
                                          "backbone_kwargs": dict(budget.backbone_kwargs)},
                             constraints=Constraints(max_latency_ms=5.0))
    results = [
        ({"val_acc": 0.7, "latency_ms": 4.0, "params_m": 1.0, "epoch": FULL}, False),  # completed, feasible
        ({"val_acc": 0.4, "latency_ms": 3.0, "params_m": 1.0, "epoch": 1}, True),  # raised after epoch 1
        (None, True),  # raised before reporting anything
        ({"latency_ms": 9.0, "params_m": 1.0, "epoch": 0, "rejected": 1.0}, False),  # over max_latency_ms
    ]
    for i, (result, error) in enumerate(results):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", result=result, error=error)
    trials = searcher._ot_study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert trials[0].constraints == {"max_latency_ms": -1.0}  # feasible: <= 0
    assert trials[3].constraints == {"max_latency_ms": 4.0} and trials[3].values == [0.0, 9.0]
    searcher.suggest("t4")  # the sampler still proposes with infeasible and failed trials in its history
