"""Pareto maths over trial metrics: which trials no other trial beats on every objective."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The search's objectives: metric name -> "max" or "min". Units: val_acc is a fraction 0-1, latency_ms milliseconds.
OBJECTIVES: dict[str, str] = {"val_acc": "max", "latency_ms": "min"}


def dominates(a: Mapping[str, float], b: Mapping[str, float], *, objectives: Mapping[str, str] = OBJECTIVES) -> bool:
    """True when ``a`` is at least as good as ``b`` on every objective and strictly better on one."""
    better = False
    for metric, mode in objectives.items():
        sign = 1.0 if mode == "max" else -1.0
        diff = sign * (a[metric] - b[metric])
        if diff < 0:
            return False
        better = better or diff > 0
    return better


def pareto_front(points: Sequence[Mapping[str, float]], *, objectives: Mapping[str, str] = OBJECTIVES) -> list[int]:
    """Indices of the non-dominated points, in input order.

    Duplicates (equal on every objective) are all kept. O(n^2), fine for the hundreds of trials of a search.
    """
    for mode in objectives.values():
        if mode not in ("max", "min"):
            raise ValueError(f"objective mode {mode!r} is not one of: max, min")
    return [i for i, p in enumerate(points) if not any(dominates(q, p, objectives=objectives) for q in points)]
