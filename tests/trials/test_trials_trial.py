import pytest

from trials import TrialBudget, TrialDiverged, load_dataset, run_trial

EXPECTED_KEYS = {"latency_ms", "latency_iqr_ms", "params_m", "flops_g", "epoch", "train_loss", "val_acc", "epoch_s"}
FAST = dict(batch_size=64, latency_runs=3, latency_warmup=1, device="cpu")


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", train_size=1024, val_size=256, seed=0)


def test_run_trial_learns_and_reports_every_epoch(synthetic, tiny_cnn):
    reports = []
    final = run_trial(
        model=tiny_cnn(), data=synthetic, budget=TrialBudget(epochs=4, lr=0.2, **FAST),
        report=lambda metrics, model: reports.append(metrics),
    )
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]
    assert all(set(r) == EXPECTED_KEYS for r in reports)
    assert final == reports[-1]
    assert final["val_acc"] > 0.5  # chance is 0.1
    assert final["latency_ms"] > 0 and final["params_m"] > 0 and final["flops_g"] > 0
    assert reports[0]["latency_ms"] == reports[-1]["latency_ms"]  # static metrics measured once, before training


def test_huge_lr_raises_trial_diverged(synthetic, tiny_cnn):
    with pytest.raises(TrialDiverged, match="epoch 1, step"):
        run_trial(model=tiny_cnn(), data=synthetic, budget=TrialBudget(epochs=2, lr=1e9, **FAST))


def test_a_raising_report_stops_the_trial(synthetic, tiny_cnn):
    class Stop(Exception):
        pass

    epochs_seen = []

    def report(metrics, model):
        epochs_seen.append(metrics["epoch"])
        raise Stop

    with pytest.raises(Stop):
        run_trial(model=tiny_cnn(), data=synthetic, budget=TrialBudget(epochs=5, **FAST), report=report)
    assert epochs_seen == [1]


def test_same_seed_same_result(synthetic, tiny_cnn):
    import torch

    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = tiny_cnn()
        runs.append(run_trial(model=model, data=synthetic, budget=TrialBudget(epochs=1, **FAST)))
    assert runs[0]["train_loss"] == pytest.approx(runs[1]["train_loss"], rel=1e-5)
