"""How well a cheap training budget ranks architectures as a long one does: the proxy-task check's statistics.

Given every run of the check (architecture x seed x budget, each with its final ``test_acc`` on the official test
split, its per-epoch ``val_acc`` and its wall time), each budget gets:

- ``seed_std``: the pooled seed-to-seed standard deviation of test_acc, ``sqrt(mean over architectures of the
  variance over seeds)`` (fraction 0-1): the noise a comparison at this budget has to beat;
- ``tau`` (and its p-value): Kendall's tau between the architectures' mean test_acc at this budget and at the
  reference budget (``scipy.stats.kendalltau``; Vertex AI NAS trusts a proxy task from about 0.65);
- ``latency_tau``: the same for the probe's latency_ms (does the latency ranking repeat between runs);
- ``epoch1_tau`` / ``epoch1_tau_raw``: Kendall's tau of the epoch-1 val_acc (of the weight average, and of the live
  weights) against the reference's final test_acc: how well early stopping at epoch 1 can rank; ``epoch1_rho`` /
  ``epoch1_rho_raw``: the same as Spearman's rho (``scipy.stats.spearmanr``);
- ``epoch_tau`` / ``epoch_tau_raw``: the same Kendall tau after every epoch k (index k-1; the last epoch's val_acc
  included), which tells ASHA's first rung where to be (:func:`grace_period`);
- ``cost_s``: the median seconds one run spends training and validating (what a search trial pays; the probe and
  the test-split scoring are left out).

:func:`grace_period` gives the first epoch whose val_acc ranks the final test_acc with tau >= min_tau.
:func:`recommend` picks the cheapest budget with ``tau >= min_tau`` whose ``seed_std`` is below the effect to resolve.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from search.outcomes import LATENCY_MS, TEST_ACC, VAL_ACC, VAL_ACC_RAW


@dataclass(frozen=True)
class BudgetFidelity:
    """One budget's figures (module docstring); taus are None with fewer than 3 architectures in common."""

    budget: str  # EPOCHSxTRAIN_SIZE
    runs: int
    archs: int
    plain_test_acc: float | None  # mean over seeds (fraction)
    seed_std: float | None
    tau: float | None
    tau_p: float | None
    latency_tau: float | None
    epoch1_tau: float | None
    epoch1_tau_raw: float | None
    epoch1_rho: float | None
    epoch1_rho_raw: float | None
    cost_s: float
    epoch_tau: tuple[float | None, ...] = ()  # after epoch 1, 2, ... (weight average when on)
    epoch_tau_raw: tuple[float | None, ...] = ()  # the same for the live weights


def _rankable(x: Sequence[float], y: Sequence[float]) -> bool:
    """Whether a rank correlation is defined: 3 or more pairs, and neither side constant."""
    return len(x) >= 3 and len(set(x)) > 1 and len(set(y)) > 1


def _kendall(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    if not _rankable(x, y):
        return None, None
    from scipy import stats

    result = stats.kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if not _rankable(x, y):
        return None
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def _by_arch(runs: Sequence[Mapping[str, Any]], budget: str, key: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for run in runs:
        if run["budget"] == budget and run.get(key) is not None:
            out.setdefault(run["arch"], []).append(float(run[key]))
    return out


def _at_epoch(runs: Sequence[Mapping[str, Any]], budget: str, key: str, epoch: int = 1) -> dict[str, list[float]]:
    """arch -> the ``key`` value after ``epoch`` (1-based) of each run at ``budget`` that has one."""
    out: dict[str, list[float]] = {}
    for run in runs:
        values = run.get(key) or []
        if run["budget"] == budget and len(values) >= epoch and values[epoch - 1] is not None:
            out.setdefault(run["arch"], []).append(float(values[epoch - 1]))
    return out


def _epochs_of(runs: Sequence[Mapping[str, Any]], budget: str) -> int:
    return max((len(run.get(VAL_ACC) or []) for run in runs if run["budget"] == budget), default=0)


def fidelity(runs: Sequence[Mapping[str, Any]], *, reference: str, budgets: Sequence[str],
             plain: str = "plain") -> list[BudgetFidelity]:
    """The figures of each budget in ``budgets`` (the reference included, whose taus are against itself)."""
    truth = {arch: statistics.fmean(v) for arch, v in _by_arch(runs, reference, TEST_ACC).items()}
    rows = []
    for budget in budgets:
        acc = _by_arch(runs, budget, TEST_ACC)
        common = sorted(set(acc) & set(truth))
        variances = [statistics.variance(v) for v in acc.values() if len(v) > 1]
        latency, latency_ref = _by_arch(runs, budget, LATENCY_MS), _by_arch(runs, reference, LATENCY_MS)
        timed = sorted(set(latency) & set(latency_ref))
        early, early_raw = _at_epoch(runs, budget, VAL_ACC), _at_epoch(runs, budget, VAL_ACC_RAW)
        epochs = range(1, _epochs_of(runs, budget) + 1)
        epoch_tau = tuple(_kendall(*_against(_at_epoch(runs, budget, VAL_ACC, k), truth))[0] for k in epochs)
        epoch_tau_raw = tuple(_kendall(*_against(_at_epoch(runs, budget, VAL_ACC_RAW, k), truth))[0] for k in epochs)
        tau, tau_p = _kendall([statistics.fmean(acc[a]) for a in common], [truth[a] for a in common])
        rows.append(BudgetFidelity(
            budget=budget, runs=sum(len(v) for v in acc.values()), archs=len(acc),
            plain_test_acc=statistics.fmean(acc[plain]) if plain in acc else None,
            seed_std=math.sqrt(statistics.fmean(variances)) if variances else None, tau=tau, tau_p=tau_p,
            latency_tau=_kendall([statistics.median(latency[a]) for a in timed],
                                 [statistics.median(latency_ref[a]) for a in timed])[0],
            epoch1_tau=epoch_tau[0] if epoch_tau else None, epoch1_tau_raw=epoch_tau_raw[0] if epoch_tau_raw else None,
            epoch1_rho=_spearman(*_against(early, truth)), epoch1_rho_raw=_spearman(*_against(early_raw, truth)),
            cost_s=statistics.median(run["train_s"] for run in runs if run["budget"] == budget)
            if any(run["budget"] == budget for run in runs) else float("nan"),
            epoch_tau=epoch_tau, epoch_tau_raw=epoch_tau_raw))
    return rows


def _against(values: Mapping[str, list[float]], truth: Mapping[str, float]) -> tuple[list[float], list[float]]:
    common = sorted(set(values) & set(truth))
    return [statistics.fmean(values[a]) for a in common], [truth[a] for a in common]


def grace_period(row: BudgetFidelity, *, min_tau: float) -> int | None:
    """The first epoch (1-based, before the last) after which the val_acc ranks the reference's final test_acc with
    Kendall tau >= ``min_tau``: where ASHA's first rung can stop trials without stopping on noise; None if no epoch
    before the last does (then early stopping at this budget acts on noise: leave it off or lengthen the budget)."""
    for epoch, tau in enumerate(row.epoch_tau[:-1], start=1):
        if tau is not None and tau >= min_tau:
            return epoch
    return None


def recommend(rows: Sequence[BudgetFidelity], *, reference: str, min_tau: float, effect: float) -> tuple[str | None, str]:
    """The cheapest budget (by cost_s) other than the reference with tau >= min_tau and seed_std < effect, and one
    sentence saying so, or why none qualifies."""
    candidates = [r for r in rows if r.budget != reference and r.tau is not None and r.seed_std is not None]
    good = sorted((r for r in candidates if r.tau >= min_tau and r.seed_std < effect), key=lambda r: r.cost_s)
    if good:
        best = good[0]
        return best.budget, (f"Use {best.budget} (epochs x training images): it ranks like {reference} with Kendall "
                             f"tau {best.tau:.2f} (p={best.tau_p:.3g}) and its seed std {best.seed_std:.4f} is below "
                             f"the effect to resolve ({effect:g}), at {best.cost_s:.0f} s per trial.")
    if not candidates:
        return None, "No cheap budget has finished runs yet: nothing to recommend."
    closest = max(candidates, key=lambda r: r.tau)
    return None, (f"No cheap budget qualifies (tau >= {min_tau:g} and seed std < {effect:g}); the best ranking is "
                  f"{closest.budget} with tau {closest.tau:.2f} and seed std {closest.seed_std:.4f}: lengthen the "
                  f"cheap budgets or resolve a larger effect.")
