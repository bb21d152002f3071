"""What the phases of a search hand each other about a trial: :class:`FinishedTrial`, one trial that ran its full
epoch budget. The summary builds them from Ray's results (:func:`search.summary.front.summarise_search`); the printed
front, ``pareto.csv``/``pareto.png`` and the confirmation's choice of candidates read them. No Ray, no MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backbones import ArchConfig
from search.outcomes import FLOPS_G, LATENCY_MS, LATENCY_OBJECTIVE, PARAMS_M, VAL_ACC


@dataclass(frozen=True)
class FinishedTrial:
    """One full-budget trial of the search: its last epoch's metrics (names and units: :mod:`search.outcomes`)."""

    trial_id: str  # Ray trial id (the MLflow run name)
    run_id: str  # its MLflow run ("" when the tracker recorded none)
    arch: ArchConfig
    control: str  # the control's name (plain, se_r16, ...), "" for a searched trial
    score: float  # the search's score (metric ``metric``: val_acc, val_miou), fraction 0-1
    ranked_ms: float  # the latency the search ranks (ms), named ``latency`` (latency_norm_ms, latency_target_ms)
    latency_ms: float  # median raw batch-1 latency of its probe
    params_m: float
    flops_g: float
    pareto: bool = False  # on the study's constraint-aware front (Study.best_trials)
    metric: str = VAL_ACC  # the name of ``score`` (search.outcomes.Score.val)
    latency: str = LATENCY_OBJECTIVE  # the name of ``ranked_ms`` (search.outcomes.Score.latency)

    @classmethod
    def from_result(cls, metrics: dict[str, Any], *, arch: ArchConfig, run_id: str, control: str,
                    metric: str = VAL_ACC, latency: str = LATENCY_OBJECTIVE) -> FinishedTrial:
        """From a trial's last reported result (``trial_id``, the score ``metric``, the ranked ``latency`` and the
        metrics above)."""
        return cls(trial_id=metrics["trial_id"], run_id=run_id, arch=arch, control=control,
                   score=float(metrics[metric]), metric=metric, ranked_ms=float(metrics[latency]), latency=latency,
                   **{field: float(metrics[key]) for field, key in _METRICS.items()})

    def cells(self) -> dict[str, Any]:
        """Its cells for a table or CSV, keyed by column (the metrics by their names; ``arch`` as its string form)."""
        return {"trial_id": self.trial_id, "control": self.control, "pareto": self.pareto, self.metric: self.score,
                self.latency: self.ranked_ms, **{key: getattr(self, field) for field, key in _METRICS.items()},
                "arch": str(self.arch), "run_id": self.run_id}


# field -> metric name, besides the score and the ranked latency; the fields are the names themselves
_METRICS = {"latency_ms": LATENCY_MS, "params_m": PARAMS_M, "flops_g": FLOPS_G}
