"""Whole-model latency on the target from its latency table: backbone + the modules' costs, corrected.

``raw(arch)`` = the plain backbone with ``arch``'s head + the cost of each attention module it has (one table row per
module copy, at the shape it sees). Timed alone, each module also pays what one ``session.run`` costs and misses
what the runtime fuses or overlaps inside a whole graph, so the sum is off by an amount that grows with the number of
modules. The correction is measured, not assumed: a least-squares fit over the table's calibration architectures
(timed whole on the target)::

    predicted_ms = intercept_ms + scale * raw_ms + per_module_ms * n_modules

and :func:`held_out_error` states the error on the held-out architectures (another seed): MAPE, the share within
±10% and Kendall's tau of the ranking, the figures HW-NAS predictors report (nn-Meter, Zhang et al. 2021: 99.0%
within ±10% on a Pixel 4 CPU, https://doi.org/10.1145/3458864.3467882; HELP, Lee et al. 2021,
https://arxiv.org/abs/2106.08630; BRP-NAS, Dudziak et al. 2020, https://arxiv.org/abs/2007.08668).
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backbones import ArchConfig
from devices.table import LatencyTable, TableError, load_table
from devices.variants import backbone_key, base_of, modules_of, space_modules
from spaces import SearchSpace

WITHIN = 0.10  # the tolerance of "within": |predicted / measured - 1| <= 10%


class Unpriceable(ValueError):
    """The table cannot price this architecture; the message is one line naming what is missing."""


@dataclass(frozen=True)
class Price:
    """What a prediction is made of, in ms."""

    backbone_ms: float  # the plain backbone with the architecture's head
    modules_ms: tuple[tuple[str, float], ...]  # (module key, cost) per module copy, stage by stage
    predicted_ms: float  # after the correction

    @property
    def raw_ms(self) -> float:
        return self.backbone_ms + sum(ms for _, ms in self.modules_ms)


@dataclass(frozen=True)
class Correction:
    """``intercept_ms + scale * raw_ms + per_module_ms * n_modules`` (module docstring); fitted by :func:`fit`."""

    intercept_ms: float = 0.0
    scale: float = 1.0
    per_module_ms: float = 0.0

    def apply(self, raw_ms: float, n_modules: int) -> float:
        return self.intercept_ms + self.scale * raw_ms + self.per_module_ms * n_modules


@dataclass(frozen=True)
class PredictorError:
    """A predictor's error on architectures timed whole on the target."""

    n: int  # architectures
    mape: float  # mean |predicted / measured - 1|, a fraction
    within_10: float  # share with |predicted / measured - 1| <= 10%, a fraction
    kendall_tau: float  # rank agreement of predicted and measured latency (scipy.stats.kendalltau, tau-b)
    max_error: float  # largest |predicted / measured - 1|, a fraction

    def __str__(self) -> str:
        return (f"{self.n} architectures: MAPE {self.mape:.1%}, {self.within_10:.0%} within ±{WITHIN:.0%}, "
                f"Kendall tau {self.kendall_tau:.2f}, worst {self.max_error:.1%}")


@dataclass(frozen=True)
class LatencyPredictor:
    """Prices architectures of the table's space on the table's device. Build it with :func:`fit` or
    :func:`load_predictor`."""

    table: LatencyTable
    correction: Correction

    def price(self, arch: ArchConfig) -> Price:
        """The prediction for ``arch`` and its parts; :class:`Unpriceable` (one line) when the table lacks one."""
        arch = ArchConfig.from_dict(arch)
        where = f"latency table {self.table.path}"
        if base_of(arch).to_dict() != self.table.base.to_dict():
            raise Unpriceable(f"{where} cannot price {arch}: measured on {self.table.base.backbone} "
                              f"{dict(self.table.base.backbone_kwargs)}, the candidate is {arch.backbone} "
                              f"{dict(arch.backbone_kwargs)}")
        head = backbone_key(arch.head)
        if head not in self.table.costs:
            raise Unpriceable(f"{where} cannot price {arch}: no row {head!r} (its space offers no head "
                              f"{arch.head!r})")
        modules = []
        for module in modules_of(arch, image=self.table.image):
            if module.key not in self.table.costs:
                raise Unpriceable(f"{where} cannot price {arch}: no row for module {module.key!r} at stage "
                                  f"{module.stage} (not in space {self.table.space!r} as measured)")
            modules.append((module.key, self.table.costs[module.key]))
        raw = self.table.costs[head] + sum(ms for _, ms in modules)
        return Price(backbone_ms=self.table.costs[head], modules_ms=tuple(modules),
                     predicted_ms=self.correction.apply(raw, len(modules)))

    def predict(self, arch: ArchConfig) -> float:
        """Predicted latency of ``arch`` on the table's device, ms (batch ``table.batch``, ``table.threads``
        threads); raises :class:`Unpriceable` with one line naming what the table lacks."""
        return self.price(arch).predicted_ms


def _features(predictor: LatencyPredictor, archs: Sequence[ArchConfig]) -> np.ndarray:
    prices = [predictor.price(a) for a in archs]
    return np.array([[1.0, p.raw_ms, len(p.modules_ms)] for p in prices])


def fit(table: LatencyTable) -> LatencyPredictor:
    """The predictor of ``table`` with its correction fitted on the calibration architectures (least squares).

    Raises :class:`TableError` when the table has fewer calibration architectures than the correction has
    coefficients (3) or cannot price one of them."""
    calibration = table.by_role("calibration")
    if len(calibration) < 3:
        raise TableError(f"latency table {table.path} has {len(calibration)} calibration architecture(s); "
                         f"the correction needs at least 3")
    uncorrected = LatencyPredictor(table=table, correction=Correction())
    try:
        x = _features(uncorrected, [m.arch for m in calibration])
    except Unpriceable as err:
        raise TableError(f"calibration architecture: {err}") from None
    y = np.array([m.ms for m in calibration])
    (intercept, scale, per_module), *_ = np.linalg.lstsq(x, y, rcond=None)
    return LatencyPredictor(table=table, correction=Correction(float(intercept), float(scale), float(per_module)))


def load_predictor(path: str | Path, *, space: SearchSpace | None = None,
                   base: ArchConfig | None = None) -> LatencyPredictor:
    """What a search loads once, before it starts: the table at ``path`` checked against ``space`` and ``base`` (its
    name, its backbone, and that every module and head the space can produce has a row: :func:`check_covers`), and
    the predictor :func:`fit` on it. Raises :class:`TableError` with one line otherwise."""
    predictor = fit(load_table(path, space=None if space is None else space.name, base=base))
    if space is not None:
        check_covers(predictor.table, space)
    return predictor


def check_covers(table: LatencyTable, space: SearchSpace) -> None:
    """Raise :class:`TableError` naming what ``space`` can produce on the table's base and the table lacks (a space
    edited after its bundle was written), so no candidate is refused halfway through a search."""
    keys = [backbone_key(head) for head in space.head] + list(space_modules(space, base=table.base, image=table.image))
    if missing := [key for key in keys if key not in table.costs]:
        raise TableError(f"latency table {table.path} lacks {len(missing)} of the {len(keys)} backbone/module rows "
                         f"space {space.name!r} needs, e.g. {missing[0]!r}; write and time a new bundle")


def prediction_error(predicted: Sequence[float], measured: Sequence[float]) -> PredictorError:
    """MAPE, share within ±10%, Kendall's tau and the worst error of ``predicted`` against ``measured``."""
    from scipy import stats

    errors = [abs(p / m - 1) for p, m in zip(predicted, measured)]
    tau = float(stats.kendalltau(predicted, measured).statistic) if len(errors) > 1 else float("nan")
    return PredictorError(n=len(errors), mape=statistics.fmean(errors),
                          within_10=sum(e <= WITHIN + 1e-12 for e in errors) / len(errors), kendall_tau=tau,
                          max_error=max(errors))


def held_out_error(predictor: LatencyPredictor, *, role: str = "held_out") -> PredictorError:
    """The predictor's error on the table's architectures of ``role`` (``held_out``: never seen by the fit)."""
    measured = predictor.table.by_role(role)
    if not measured:
        raise TableError(f"latency table {predictor.table.path} has no {role} architectures to state an error on")
    return prediction_error([predictor.predict(m.arch) for m in measured], [m.ms for m in measured])
