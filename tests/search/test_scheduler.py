"""The early-stopping rules (search.execution.scheduler): the rung milestones agree with Ray's ASHA, the Pareto
rule keeps what a front needs, and the Ray schedulers decide through Tune's public TrialScheduler API on real
``ray.tune.experiment.Trial`` objects (stub trials: no Ray runtime needed to ask a scheduler)."""
from __future__ import annotations

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from search.execution.scheduler import SCHEDULERS, ParetoASHA, make_scheduler, rung_milestones
from search.outcomes import ASHA_RANKS
from search.pareto import crowding_distances, nondominated_ranks, pareto_keeps, pareto_order
from search.settings.plan import AshaPlan

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


@pytest.mark.parametrize(("grace", "rf", "full", "expected"), [
    (1, 2, 5, [1, 2, 4]), (2, 2, 5, [2, 4]), (1, 3, 10, [1, 3, 9]), (2, 3, 3, [2]), (1, 4, 16, [1, 4]),
    (3, 2, 3, []), (5, 2, 3, [])])
def test_milestones_are_rays(grace: int, rf: float, full: int, expected: list[int]) -> None:
    """Ray's ASHAScheduler milestones grace · rf^k (k < log(full/grace)/log(rf) + 1), below the full budget."""
    assert rung_milestones(grace_period=grace, reduction_factor=rf, full_epochs=full) == expected


def test_nondominated_sorting_and_crowding_by_hand() -> None:
    points = [(0.9, 3.0), (0.8, 1.0), (0.7, 2.0), (0.6, 4.0), (0.9, 3.0)]
    assert nondominated_ranks(points) == [0, 0, 1, 2, 0]  # equal points do not dominate each other
    assert crowding_distances([(0.9, 3.0), (0.8, 2.0), (0.7, 1.0)]) == [float("inf"), 2.0, float("inf")]
    # front 0 first (its ends before its middle by crowding), then accuracy; the dominated after
    assert pareto_order([(0.7, 2.0), (0.9, 3.0), (0.85, 2.5), (0.8, 1.0), (0.6, 4.0)]) == [1, 3, 2, 0, 4]


def test_pareto_rule_keeps_a_fast_modest_trial_that_val_acc_alone_would_stop() -> None:
    recorded = [(0.90, 3.0), (0.80, 2.0)]
    assert pareto_keeps((0.70, 1.0), recorded, reduction_factor=2)  # the fast end of the front
    assert not pareto_keeps((0.70, 3.0), recorded, reduction_factor=2)  # dominated by (0.90, 3.0)
    assert pareto_keeps((0.50, 9.0), [], reduction_factor=2)  # the first at a rung always continues


def _result(epoch: int, val_acc: float, latency: float) -> dict:
    return {"training_iteration": epoch, "val_acc": val_acc, "latency_norm_ms": latency}


def test_pareto_asha_through_the_scheduler_api() -> None:
    scheduler = make_scheduler(full_epochs=4, asha=AshaPlan(grace_period=1, reduction_factor=2, rank="pareto"))
    assert isinstance(scheduler, ParetoASHA) and scheduler.milestones == [1, 2]
    accurate, fast, slow_bad = (Trial("__fake", stub=True, config={}) for _ in range(3))
    control = Trial("__fake", stub=True, config={"control": "plain"})
    assert scheduler.on_trial_result(None, accurate, _result(1, 0.9, 3.0)) == CONTINUE
    assert scheduler.on_trial_result(None, fast, _result(1, 0.6, 1.0)) == CONTINUE  # on the front
    assert scheduler.on_trial_result(None, slow_bad, _result(1, 0.5, 4.0)) == STOP  # dominated
    assert scheduler.on_trial_result(None, control, _result(1, 0.1, 9.0)) == CONTINUE  # controls run in full
    assert scheduler.on_trial_result(None, accurate, _result(3, 0.95, 3.0)) == CONTINUE  # not a rung
    rejected = Trial("__fake", stub=True, config={})
    assert scheduler.on_trial_result(None, rejected, {"training_iteration": 1, "latency_norm_ms": 1.0}) == CONTINUE


def test_every_rank_has_a_scheduler_and_val_acc_is_rays_asha() -> None:
    assert tuple(SCHEDULERS) == ASHA_RANKS
    asha = make_scheduler(full_epochs=4, asha=AshaPlan(grace_period=1, reduction_factor=2, rank="val_acc"))
    first, second = Trial("__fake", stub=True, config={}), Trial("__fake", stub=True, config={})
    asha.on_trial_add(None, first)
    asha.on_trial_add(None, second)
    assert asha.on_trial_result(None, first, _result(1, 0.9, 1.0)) == CONTINUE
    assert asha.on_trial_result(None, second, _result(1, 0.5, 1.0)) == STOP


def test_pareto_asha_ranks_the_latency_it_is_given() -> None:
    """With latency.table the rung's second objective is latency_target_ms: a trial slow here but fast on the target
    stays on the front, whatever latency_norm_ms says."""
    scheduler = make_scheduler(full_epochs=4, asha=AshaPlan(grace_period=1, reduction_factor=2, rank="pareto"),
                               latency="latency_target_ms")
    accurate, fast_there, dominated = (Trial("__fake", stub=True, config={}) for _ in range(3))

    def result(acc: float, here: float, there: float) -> dict:
        return {"training_iteration": 1, "val_acc": acc, "latency_norm_ms": here, "latency_target_ms": there}

    assert scheduler.on_trial_result(None, accurate, result(0.9, 1.0, 3.0)) == CONTINUE
    assert scheduler.on_trial_result(None, fast_there, result(0.6, 9.0, 1.0)) == CONTINUE  # front on the target
    assert scheduler.on_trial_result(None, dominated, result(0.5, 0.5, 4.0)) == STOP  # fastest here, dominated there
