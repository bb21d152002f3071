"""The proxy check's statistics (search.summary.fidelity) on hand-made runs whose answers are known."""

from __future__ import annotations

import math

import pytest

from search.summary.fidelity import fidelity, grace_period, recommend

ARCHS = ("plain", "a", "b", "c", "d")
TRUTH = {"plain": 0.80, "a": 0.82, "b": 0.84, "c": 0.86, "d": 0.88}  # the reference ranks them plain < a < ... < d


def _runs(budget: str, means: dict[str, float], *, spread: float, cost: float) -> list[dict]:
    return [{"budget": budget, "arch": arch, "seed": seed, "test_acc": mean + sign * spread,
             "val_acc": [mean - 0.1 + sign * spread], "val_acc_raw": [mean - 0.1 - sign * 3 * spread * (arch == "d")],
             "latency_ms": 1.0 + ARCHS.index(arch), "train_s": cost, "wall_s": cost + 1}
            for arch, mean in means.items() for seed, sign in ((1, -1), (2, 1))]


def test_taus_stds_and_the_recommendation() -> None:
    same_order = {arch: acc - 0.1 for arch, acc in TRUTH.items()}  # lower, but ranked the same
    reversed_order = dict(zip(ARCHS, sorted(TRUTH.values(), reverse=True)))
    runs = (_runs("4x8000", TRUTH, spread=0.001, cost=100) + _runs("2x3000", reversed_order, spread=0.001, cost=10)
            + _runs("3x3000", same_order, spread=0.004, cost=15) + _runs("3x6000", same_order, spread=0.001, cost=30))
    rows = {r.budget: r for r in fidelity(runs, reference="4x8000", budgets=["4x8000", "2x3000", "3x3000", "3x6000"])}
    assert rows["4x8000"].tau == pytest.approx(1.0) and rows["2x3000"].tau == pytest.approx(-1.0)
    assert rows["3x3000"].tau == pytest.approx(1.0) and rows["3x3000"].tau_p < 0.05
    assert rows["3x3000"].seed_std == pytest.approx(math.sqrt(2) * 0.004)  # two seeds at mean -/+ 0.004
    assert rows["3x3000"].plain_test_acc == pytest.approx(0.70) and rows["3x3000"].cost_s == 15
    assert rows["3x6000"].latency_tau == pytest.approx(1.0) and rows["3x6000"].epoch1_tau == pytest.approx(1.0)
    assert rows["3x6000"].epoch1_rho == pytest.approx(1.0)
    swapped = [dict(r, val_acc=[1 - r["val_acc"][0]]) for r in runs]  # epoch 1 ranks them backwards
    backwards = fidelity(swapped, reference="4x8000", budgets=["3x6000"])[0]
    assert backwards.epoch1_tau == pytest.approx(-1.0) and backwards.epoch1_rho == pytest.approx(-1.0)
    # the cheapest budget that ranks right and whose noise is below the effect
    choice, sentence = recommend(list(rows.values()), reference="4x8000", min_tau=0.65, effect=0.005)
    assert choice == "3x6000" and "3x6000" in sentence  # 3x3000 ranks right but its std 0.0057 is above 0.005
    choice, _ = recommend(list(rows.values()), reference="4x8000", min_tau=0.65, effect=0.01)
    assert choice == "3x3000"
    choice, sentence = recommend([rows["4x8000"], rows["2x3000"]], reference="4x8000", min_tau=0.65, effect=0.01)
    assert choice is None and "No cheap budget qualifies" in sentence


def test_per_epoch_taus_and_the_grace_period() -> None:
    """Epoch 1 ranks backwards, epoch 2 and 3 like the reference: ASHA's first rung belongs at epoch 2."""
    reference = _runs("4x8000", TRUTH, spread=0.001, cost=100)
    cheap = [dict(run, budget="3x3000", val_acc=[1 - run["test_acc"], run["test_acc"] - 0.2, run["test_acc"] - 0.1],
                  val_acc_raw=[0.5, 0.5, run["test_acc"]]) for run in reference]
    row = fidelity(reference + cheap, reference="4x8000", budgets=["3x3000"])[0]
    assert row.epoch_tau == pytest.approx((-1.0, 1.0, 1.0))
    assert row.epoch_tau_raw[:2] == (None, None) and row.epoch_tau_raw[2] == pytest.approx(1.0)  # constant: no tau
    assert row.epoch_tau[0] == pytest.approx(row.epoch1_tau)
    assert grace_period(row, min_tau=0.65) == 2
    flat = fidelity(reference + [dict(r, val_acc=[0.5, 0.5, r["test_acc"]]) for r in cheap], reference="4x8000",
                    budgets=["3x3000"])[0]
    assert grace_period(flat, min_tau=0.65) is None  # only the last epoch ranks: early stopping would act on noise
