"""Pareto maths: hand-checked cases and a brute-force cross-check."""

from __future__ import annotations

import random

from search.pareto import dominates, pareto_front


def p(acc: float, ms: float) -> dict[str, float]:
    return {"val_acc": acc, "latency_ms": ms}


def test_dominance_needs_one_strict_improvement() -> None:
    assert dominates(p(0.9, 1.0), p(0.8, 2.0))
    assert dominates(p(0.9, 1.0), p(0.9, 2.0))
    assert not dominates(p(0.9, 1.0), p(0.9, 1.0))
    assert not dominates(p(0.9, 3.0), p(0.8, 2.0))


def test_front_of_a_hand_made_set() -> None:
    points = [p(0.80, 1.0), p(0.85, 2.0), p(0.84, 3.0), p(0.90, 5.0), p(0.79, 1.5), p(0.90, 5.0)]
    assert pareto_front(points) == [0, 1, 3, 5]  # ties on every objective are both kept


def test_front_matches_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(50):
        points = [p(rng.random(), rng.random() * 10) for _ in range(rng.randint(1, 30))]
        front = pareto_front(points)
        for i, a in enumerate(points):
            beaten = any(b["val_acc"] >= a["val_acc"] and b["latency_ms"] <= a["latency_ms"] and b != a
                         for b in points)
            assert (i in front) == (not beaten)
