"""The searcher: every sampler proposes buildable ArchConfigs; a trial stopped early reaches Optuna as PRUNED."""

from __future__ import annotations

import optuna
import pytest

from backbones import build
from search.tuning import SAMPLERS, make_searcher
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
        assert config["s0_attn"] == arch["stages"][0]["attn"]
        if i == 0:
            build(arch)  # the ArchConfig the searcher hands to trials is buildable
        epoch = FULL if i % 2 == 0 else 1  # odd trials: stopped by ASHA after one epoch
        searcher.on_trial_complete(f"t{i}", result={"val_acc": 0.5 + i / 100, "latency_ms": 1.0 + i, "epoch": epoch})
    states = [t.state for t in searcher._ot_study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 4
    assert states.count(optuna.trial.TrialState.PRUNED) == 4
    complete = [t for t in searcher._ot_study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.values[0] in (0.5, 0.52, 0.54, 0.56) for t in complete)  # partial accuracies never told
