"""The searcher: every sampler proposes buildable ArchConfigs from a study in RDB storage; a trial stopped early
reaches Optuna as PRUNED, a failed one as FAIL, a rejected one infeasible; no architecture is proposed to Ray twice."""

from __future__ import annotations

import pickle

import optuna
import pytest

from backbones import build
from search.samplers import SAMPLERS
from search.study.searcher import DUPLICATE_ATTR, RAY_TRIAL_ATTR, StudySearcher, open_study
from spaces import load_space
from trials import Constraints

FULL = 3


def _searcher(tmp_path, sampler: str, *, trials: int = 8, constraints: Constraints = Constraints(),
              space: str = "fashion_attention", said: list | None = None) -> StudySearcher:
    space = load_space(space)
    budget = space.budgets["cpu"]
    base = space.base_arch(backbone=budget.backbone, in_chans=1, num_classes=10,
                           backbone_kwargs=budget.backbone_kwargs)
    return StudySearcher(space=space, base=base, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s",
                         sampler=sampler, seed=0, trials=trials, full_epochs=FULL, constraints=constraints,
                         announce=(said.append if said is not None else print))


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_sampler_proposes_archs_and_learns_only_from_full_budget_trials(tmp_path, sampler: str) -> None:
    searcher = _searcher(tmp_path, sampler)
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        arch = config["arch"]
        assert arch["backbone"] == searcher.base.backbone and len(arch["stages"]) == searcher.space.num_stages
        if i == 0:
            build(arch)  # the ArchConfig the searcher hands to trials is buildable
        epoch = FULL if i % 2 == 0 else 1  # odd trials: stopped by ASHA after one epoch
        searcher.on_trial_complete(f"t{i}", result={"val_acc": 0.5 + i / 100, "latency_ms": 1.0 + i, "latency_norm_ms": 1.0 + i, "epoch": epoch})
    study = open_study(storage=searcher.storage, name="s")  # the study is in the RDB storage, not in memory
    trained = [t for t in study.trials if RAY_TRIAL_ATTR in t.user_attrs]
    assert [t.state for t in trained].count(optuna.trial.TrialState.COMPLETE) == 4
    assert [t.state for t in trained].count(optuna.trial.TrialState.PRUNED) == 4
    complete = [t for t in trained if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.values[0] in (0.5, 0.52, 0.54, 0.56) for t in complete)  # partial accuracies never told
    # the front comes from the study: the fastest complete trial is on it
    assert min(complete, key=lambda t: t.values[1]).number in {t.number for t in study.best_trials}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_failed_trials_are_told_fail_and_rejected_ones_infeasible(tmp_path, sampler: str) -> None:
    """A trial that raised is FAIL even when it had reported; a trial over a hard budget is COMPLETE with a positive
    constraint violation, so the sampler ranks it infeasible and it is never on the front."""
    searcher = _searcher(tmp_path, sampler, trials=6, constraints=Constraints(max_latency_ms=5.0))
    results = [
        ({"val_acc": 0.7, "latency_ms": 4.0, "latency_norm_ms": 4.0, "params_m": 1.0, "epoch": FULL}, False),  # completed, feasible
        ({"val_acc": 0.4, "latency_ms": 3.0, "latency_norm_ms": 3.0, "params_m": 1.0, "epoch": 1}, True),  # raised after epoch 1
        (None, True),  # raised before reporting anything
        ({"latency_ms": 9.0, "latency_norm_ms": 9.0, "params_m": 1.0, "epoch": 0, "rejected": 1.0}, False),  # over max_latency_ms
    ]
    for i, (result, error) in enumerate(results):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", result=result, error=error)
    trials = [t for t in searcher.study.trials if RAY_TRIAL_ATTR in t.user_attrs]
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert trials[0].constraints == {"max_latency_ms": -1.0}  # feasible: <= 0
    assert trials[3].constraints == {"max_latency_ms": 4.0} and trials[3].values == [0.0, 9.0]
    assert {t.number for t in searcher.study.best_trials} == {trials[0].number}
    searcher.suggest("t4")  # the sampler still proposes with infeasible and failed trials in its history


def test_a_repeated_architecture_is_never_trained_twice(tmp_path) -> None:
    """On a tiny space the sampler proposes the same architecture again: the repeat gets the earlier result (told
    at once when that trial had ended, or when it ends), no Ray trial is started for it, and the searcher says so."""
    said: list[str] = []
    searcher = _searcher(tmp_path, "random", said=said)
    searcher.space = load_space("fashion_attention").__class__(**{
        **load_space("fashion_attention").__dict__,
        "stages": tuple(s.__class__(**{**s.__dict__, "types": ("none", "se"), "reduction": (8,),
                                        "position": ("after_block",), "blocks": ("every",)})
                        for s in load_space("fashion_attention").stages),
        "head": ("avg",)})  # 2**4 = 16 architectures
    archs = []
    for i in range(16):
        config = searcher.suggest(f"t{i}")
        if config is None or config == "FINISHED":
            break
        archs.append(config["arch"])
        searcher.on_trial_complete(f"t{i}", result={"val_acc": 0.5 + i / 100, "latency_ms": 1.0 + i, "latency_norm_ms": 1.0 + i, "epoch": FULL})
    assert len({str(a) for a in archs}) == len(archs) == 16  # every Ray trial is a new architecture
    duplicates = [t for t in searcher.study.trials if DUPLICATE_ATTR in t.user_attrs]
    assert duplicates and said and "reusing its result" in said[0]
    for dup in duplicates:
        original = searcher.study.trials[dup.user_attrs[DUPLICATE_ATTR]]
        assert dup.state == original.state and dup.values == original.values  # Optuna gets the same values
    assert searcher.suggest("t16") == "FINISHED"  # the space is exhausted: no more trials


def test_searcher_pickles_and_resumes_from_the_study(tmp_path) -> None:
    """Ray pickles the searcher with the experiment; a restored one continues the same study, and Optuna trials
    asked after the last snapshot (never recorded by Ray) are closed as FAIL."""
    searcher = _searcher(tmp_path, "tpe")
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", result={"val_acc": 0.6, "latency_ms": 2.0, "latency_norm_ms": 2.0, "epoch": FULL})
    searcher.suggest("t1")  # running at the snapshot
    searcher.save(str(tmp_path / "state.pkl"))
    searcher.suggest("t2")  # asked after the snapshot: Ray never recorded it
    restored = pickle.loads(pickle.dumps(searcher))
    restored.restore(str(tmp_path / "state.pkl"))
    states = {t.user_attrs[RAY_TRIAL_ATTR]: t.state.name for t in restored.study.trials}
    assert states == {"t0": "COMPLETE", "t1": "RUNNING", "t2": "FAIL"}
    restored.on_trial_complete("t1", result={"val_acc": 0.7, "latency_ms": 3.0, "latency_norm_ms": 3.0, "epoch": FULL})
    assert restored.study.trials[1].state.name == "COMPLETE"
