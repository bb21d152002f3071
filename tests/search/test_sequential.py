"""The sequential confirmation rule (search.confirm.sequential): its looks and spending, its stopping, and its error
rate and power on ≥ 1,000 simulated confirmations per case, on normal and non-normal seed outcomes."""

from __future__ import annotations

import math

import pytest

from search.confirm.sequential import (ALPHA, DRAWS, SequentialDesign, look, run_sequence, simulate, t_interval)
from search.confirm.statistics import mean_interval

DESIGN = SequentialDesign(resolution=0.01, min_seeds=3, max_seeds=10)


def test_looks_grow_and_spend_exactly_alpha() -> None:
    assert DESIGN.looks == (3, 5, 8, 10)
    assert SequentialDesign(min_seeds=3, max_seeds=3).looks == (3,)
    spent = [DESIGN.look_alpha(n, candidates=1) for n in DESIGN.looks]
    assert all(a > 0 for a in spent) and math.isclose(sum(spent), ALPHA)
    assert math.isclose(DESIGN.look_alpha(5, candidates=4), spent[1] / 4)  # Bonferroni over candidates
    assert DESIGN.next_look(3) == 5 and DESIGN.next_look(9) == 10 and DESIGN.next_look(10) is None
    with pytest.raises(ValueError, match="not a look"):
        DESIGN.look_alpha(4, candidates=1)


@pytest.mark.parametrize("kwargs", [dict(min_seeds=0), dict(min_seeds=6, max_seeds=5), dict(resolution=0.0),
                                    dict(alpha=1.0)])
def test_bad_design_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SequentialDesign(**kwargs)


def test_t_interval_is_the_statistics_interval_at_the_look_level() -> None:
    """One t-interval: the rule's is search.confirm.statistics.mean_interval (checked against SciPy there)."""
    values = [0.012, -0.004, 0.021, 0.007, 0.0]
    ours = t_interval(values, level=0.99)
    mean, _, low, high = mean_interval(values, confidence=0.99)
    assert (ours.n, ours.mean, ours.low, ours.high, ours.level) == (5, mean, low, high, 0.99)
    assert t_interval([0.1], level=0.95).low is None and t_interval([], level=0.95).mean is None
    assert t_interval([0.1], level=0.95).level is None


def test_stops_on_resolution_only_when_every_candidate_is_narrow() -> None:
    tight = [0.020, 0.021, 0.019]
    assert look({"a": tight, "b": tight}, design=DESIGN).reason == "resolution reached"
    wide = [0.0, 0.05, -0.04]
    result = look({"a": tight, "b": wide}, design=DESIGN)
    assert not result.stop and result.intervals["b"].half_width > DESIGN.resolution
    capped = look({"a": wide * 3 + [0.0]}, design=DESIGN)  # 10 seeds, still wide
    assert capped.stop and capped.reason == "seed cap reached"


def test_the_interval_level_widens_with_candidates() -> None:
    diffs = [0.01, 0.03, 0.02]
    one = look({"a": diffs}, design=DESIGN).intervals["a"]
    three = look({"a": diffs, "b": diffs, "c": diffs}, design=DESIGN).intervals["a"]
    assert one.level > 0.95 and three.level > one.level and three.half_width > one.half_width


def test_run_sequence_adds_seeds_until_a_look_stops() -> None:
    draws = iter([0.0, 0.03, -0.03, 0.0, 0.03, -0.03, 0.0, 0.03, -0.03, 0.0])
    result = run_sequence(lambda _i: {"a": next(draws)}, design=DESIGN)
    assert result.seeds == 10 and result.reason == "seed cap reached"
    steady = run_sequence(lambda i: {"a": 0.02 + 0.001 * (i % 2)}, design=DESIGN)
    assert steady.seeds == 3 and steady.reason == "resolution reached" and steady.intervals["a"].low > 0


@pytest.mark.parametrize("draw", sorted(DRAWS))
def test_null_confirmations_rarely_claim_better(draw: str) -> None:
    """No true difference, 3 candidates, 1,000 confirmations: a "better" verdict in at most 5% of them, and every
    interval covers the truth in at least 95%, at a spread where the resolution is reached and where it is not."""
    for spread in (0.004, 0.015):
        result = simulate(design=DESIGN, effect=0.0, spread=spread, draw=draw, runs=1000, seed=11)
        assert result.runs == 1000
        assert result.better <= 0.05, (draw, spread, result)
        assert result.covered >= 0.95, (draw, spread, result)


@pytest.mark.parametrize("draw", sorted(DRAWS))
def test_a_difference_of_twice_the_resolution_is_found(draw: str) -> None:
    """True difference 2x the resolution at a seed spread the rule can resolve within its cap: "better" in ≥ 80%."""
    result = simulate(design=DESIGN, effect=2 * DESIGN.resolution, spread=0.004, draw=draw, runs=1000, seed=12)
    assert result.better >= 0.8, (draw, result)
    assert result.resolved >= 0.8 and result.mean_seeds < DESIGN.max_seeds


def test_a_spread_the_cap_cannot_resolve_is_stated_not_hidden() -> None:
    """Seed spread 0.03: the resolution (0.01) is out of reach at 10 seeds, so the rule runs to the cap; the
    intervals stay wide, and a null still rarely claims better."""
    result = simulate(design=DESIGN, effect=0.0, spread=0.03, draw="bimodal", runs=1000, seed=13)
    assert result.resolved == 0.0 and result.mean_seeds == DESIGN.max_seeds and result.better <= 0.05
