"""Pareto order of (accuracy ↑, latency ↓) points, and the MO-ASHA rung rule built on it. Pure Python: no Ray, no
Optuna, no MLflow, so the Ray scheduler (:mod:`search.execution.scheduler`), the one-shot pre-screen
(:mod:`search.study.prescreen`) and the benchmarks share one definition.

Why by hand: Optuna's front functions work on its ``FrozenTrial`` objects inside a study (the search's front uses
``Study.best_trials``), and its non-dominated sort and crowding distance are private
(``optuna.study._multi_objective``, ``optuna.samplers.nsgaii._elite_population_selection_strategy``); a rung of the
scheduler or a pre-screen's scores are plain points, not trials.

- :func:`nondominated_ranks`: Deb et al. 2002's non-dominated sorting (front 0, 1, …);
- :func:`crowding_distances`: NSGA-II's crowding distance within one front;
- :func:`pareto_order`: front, then crowding, then accuracy, best first;
- :func:`pareto_keeps`: MO-ASHA's selection at a rung (Schmucker et al. 2021, https://arxiv.org/abs/2106.12639).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]  # (accuracy ↑, latency ↓)


def _dominates(a: Point, b: Point) -> bool:
    return a[0] >= b[0] and a[1] <= b[1] and a != b


def first_front(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, in input order (equal points do not dominate each other)."""
    return [i for i, p in enumerate(points) if not any(_dominates(q, p) for q in points)]


def nondominated_ranks(points: Sequence[Point]) -> list[int]:
    """Front index of each (accuracy ↑, latency ↓) point: 0 for the non-dominated ones, 1 for those dominated only
    by front 0, and so on (Deb et al. 2002's sorting; O(n²) per front, fine for a rung)."""
    remaining, ranks, front = list(range(len(points))), [0] * len(points), 0
    while remaining:
        current = [remaining[i] for i in first_front([points[j] for j in remaining])]
        for i in current:
            ranks[i] = front
        remaining = [i for i in remaining if i not in current]
        front += 1
    return ranks


def crowding_distances(points: Sequence[Point]) -> list[float]:
    """NSGA-II crowding distance of each point within its set (one front): infinite at the two ends of each
    objective, else the sum over objectives of the normalised gap between its two neighbours."""
    distance = [0.0] * len(points)
    for objective in range(2):
        order = sorted(range(len(points)), key=lambda i: points[i][objective])
        span = points[order[-1]][objective] - points[order[0]][objective]
        distance[order[0]] = distance[order[-1]] = math.inf
        for before, here, after in zip(order, order[1:], order[2:]):
            if span > 0:
                distance[here] += (points[after][objective] - points[before][objective]) / span
    return distance


def pareto_order(points: Sequence[Point], *, favour: int | None = None) -> list[int]:
    """Indices of (accuracy ↑, latency ↓) points, best first: non-dominated front, then NSGA-II crowding distance
    within it, then accuracy; remaining ties go to ``favour`` (an index), if given."""
    ranks = nondominated_ranks(points)
    crowding = [0.0] * len(points)
    for front in set(ranks):
        members = [i for i in range(len(points)) if ranks[i] == front]
        for i, d in zip(members, crowding_distances([points[i] for i in members])):
            crowding[i] = d
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowding[i], -points[i][0], i != favour))


def pareto_keeps(candidate: Point, recorded: Sequence[Point], *, reduction_factor: float) -> bool:
    """The rung rule: ``candidate`` (val_acc, latency) continues when it is on the non-dominated front of the ``n``
    points recorded at the rung including itself, or ranks in their top ``ceil(n / rf)`` by front, then crowding
    distance within it (MO-ASHA's selection). Keeping the whole current front is our addition: with few trials at
    a rung, MO-ASHA's top ``n / rf`` alone would stop half of a front whose every member may be on the final one."""
    if not recorded:
        return True
    points = [*recorded, candidate]
    last = len(points) - 1
    if last in first_front(points):
        return True
    return pareto_order(points, favour=last).index(last) < max(1, math.ceil(len(points) / reduction_factor))
