"""Hard budgets on what a trial may cost: checked after the latency/parameter probe, before any training step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# constraint field -> the probe metric it bounds
_BOUNDS: dict[str, str] = {"max_latency_ms": "latency_ms", "max_params_m": "params_m"}


@dataclass(frozen=True)
class Constraints:
    """Upper bounds on a candidate; ``None`` = unbounded.

    max_latency_ms: batch-1 forward latency (``latency_ms``, milliseconds, as probed).
    max_params_m: parameters in millions (``params_m``).
    """

    max_latency_ms: float | None = None
    max_params_m: float | None = None

    def __post_init__(self) -> None:
        for field in _BOUNDS:
            value = getattr(self, field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"constraints.{field}={value!r} must be a number > 0 (or null)")

    @property
    def active(self) -> bool:
        """Whether any bound is set."""
        return any(getattr(self, field) is not None for field in _BOUNDS)

    def violations(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Measured minus allowed per set bound, keyed by field (``max_latency_ms``); > 0 means over budget.

        This is Optuna's constraint convention (``Trial.set_constraint``: feasible iff every value is <= 0).
        """
        return {field: float(metrics[metric]) - getattr(self, field)
                for field, metric in _BOUNDS.items() if getattr(self, field) is not None}

    def reason(self, metrics: Mapping[str, float]) -> str | None:
        """Why ``metrics`` are over budget (``latency_ms 5.21 > max_latency_ms 4``), or None when within it."""
        over = [f"{metric} {float(metrics[metric]):.4g} > {field} {getattr(self, field):g}"
                for field, metric in _BOUNDS.items()
                if getattr(self, field) is not None and float(metrics[metric]) > getattr(self, field)]
        return "; ".join(over) or None
