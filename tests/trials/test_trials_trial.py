import pytest

import torch

from trials import Constraints, ProbeConfig, TrainConfig, TrialDiverged, load_dataset, run_trial

EXPECTED_KEYS = {"latency_ms", "latency_iqr_ms", "latency_b32_ms", "latency_b32_iqr_ms", "threads", "params_m",
                 "flops_g", "epoch", "train_loss", "val_acc", "epoch_s"}
FAST = dict(probe=ProbeConfig(runs=3, warmup=1), device="cpu")  # and batch_size=64 in every TrainConfig


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", train_size=1024, val_size=256, seed=0)


def test_run_trial_learns_and_reports_every_epoch(synthetic, tiny_cnn):
    reports = []
    result = run_trial(
        model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=4, lr=0.2, batch_size=64), **FAST,
        report=lambda result, model: reports.append(result.metrics),
    )
    final = result.metrics
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]
    assert all(set(r) == EXPECTED_KEYS for r in reports)
    assert final == reports[-1] and not result.rejected and result.rejection is None
    assert final["val_acc"] > 0.5  # chance is 0.1
    assert final["latency_ms"] > 0 and final["params_m"] > 0 and final["flops_g"] > 0
    assert reports[0]["latency_ms"] == reports[-1]["latency_ms"]  # static metrics measured once, before training


def test_huge_lr_raises_trial_diverged(synthetic, tiny_cnn):
    with pytest.raises(TrialDiverged, match="epoch 1, step"):
        run_trial(model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=2, lr=1e9, batch_size=64), **FAST)


def test_a_raising_report_stops_the_trial(synthetic, tiny_cnn):
    class Stop(Exception):
        pass

    epochs_seen = []

    def report(result, model):
        epochs_seen.append(result.metrics["epoch"])
        raise Stop

    with pytest.raises(Stop):
        run_trial(model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=5, batch_size=64), **FAST, report=report)
    assert epochs_seen == [1]


def test_same_seed_same_result(synthetic, tiny_cnn):
    import torch

    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = tiny_cnn()
        runs.append(run_trial(model=model, data=synthetic, train=TrainConfig(epochs=1, batch_size=64), **FAST).metrics)
    assert runs[0]["train_loss"] == pytest.approx(runs[1]["train_loss"], rel=1e-5)


def test_probe_keys_info_and_throughput_batch(synthetic, tiny_cnn):
    result = run_trial(model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=0),
                       probe=ProbeConfig(runs=3, warmup=1, batch=8), device="cpu", threads=2)
    static, info = result.metrics, result.device_info
    assert set(static) == {"latency_ms", "latency_iqr_ms", "latency_b8_ms", "latency_b8_iqr_ms", "threads", "params_m",
                           "flops_g"}
    assert all(isinstance(v, float) for v in static.values())  # Ray/MLflow metrics are floats
    assert static["threads"] == 2.0 and static["latency_b8_ms"] > 0 and static["latency_b8_iqr_ms"] >= 0
    assert info["threads"] == 2 and info["device_name"] and info["torch_version"]
    assert info["latency_precision"] == "fp32" and info["latency_layout"] == "contiguous"
    assert "cuda_version" not in info  # CPU trial
    off = run_trial(model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=0),
                    probe=ProbeConfig(runs=3, warmup=1, batch=0), device="cpu").metrics
    assert not any(key.startswith("latency_b") for key in off)


def test_deployment_precision_and_layout_leave_the_trained_model_alone(synthetic, tiny_cnn):
    import torch

    model = tiny_cnn()
    probe = ProbeConfig(runs=3, warmup=1, precision="bf16", channels_last=True)
    result = run_trial(model=model, data=synthetic, train=TrainConfig(epochs=1, batch_size=64), probe=probe,
                       device="cpu")
    final, info = result.metrics, result.device_info
    assert final["latency_ms"] > 0 and final["epoch"] == 1
    assert info["latency_precision"] == "bf16" and info["latency_layout"] == "channels_last"
    weight = model[0].weight
    assert weight.dtype == torch.float32 and weight.is_contiguous()  # timed on a converted copy


@pytest.mark.parametrize("field", [dict(precision="int8"), dict(precision="FP32")])
def test_bad_precision_is_a_one_line_error_naming_the_choices(field):
    with pytest.raises(ValueError) as err:
        ProbeConfig(**field)
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in ("fp32", "bf16", "fp16"))


def test_compile_flag_reaches_the_training_forward(synthetic, tiny_cnn, monkeypatch):
    import torch

    compiled = []

    def spy(model, **kwargs):  # stands in for torch.compile: records the call, returns the eager module
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", spy)
    model = tiny_cnn()
    run_trial(model=model, data=synthetic, train=TrainConfig(epochs=1, compile=True, batch_size=64), **FAST)
    assert compiled == [model]
    compiled.clear()
    run_trial(model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=1, batch_size=64), **FAST)
    assert compiled == []


def test_compile_trains_one_epoch_on_cpu(tiny_cnn):
    """Real torch.compile (inductor, C++ on CPU): ~15-25 s with a cold inductor cache on 2 cores, ~2 s warm."""
    data = load_dataset("synthetic", train_size=256, val_size=64, seed=0)
    final = run_trial(model=tiny_cnn(), data=data, train=TrainConfig(epochs=1, compile=True, batch_size=64),
                      **FAST).metrics
    assert final["epoch"] == 1 and final["train_loss"] == final["train_loss"]  # finite, not NaN


def test_over_budget_is_rejected_after_the_probe_before_any_training(synthetic, tiny_cnn):
    model = tiny_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    reports = []
    constraints = Constraints(max_params_m=1e-9)
    result = run_trial(model=model, data=synthetic, train=TrainConfig(epochs=2, batch_size=32),
                       probe=ProbeConfig(runs=3, warmup=1, batch=0), constraints=constraints, device="cpu",
                       report=lambda r, _: reports.append(r))
    metrics = result.metrics
    assert metrics["rejected"] == 1.0 and metrics["epoch"] == 0 and "val_acc" not in metrics
    assert reports == [result]  # reported once, with the measured values
    assert result.rejected and result.rejection == constraints.reason(metrics)
    assert result.rejection.startswith("params_m ") and result.rejection.endswith("> max_params_m 1e-09")
    assert result.device_info["device_name"]  # known to the caller with the one report
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # not one training step


def test_within_budget_trains_as_usual(synthetic, tiny_cnn):
    result = run_trial(model=tiny_cnn(), data=synthetic, train=TrainConfig(epochs=1, batch_size=32),
                       probe=ProbeConfig(runs=3, warmup=1, batch=0), device="cpu",
                       constraints=Constraints(max_latency_ms=1e6, max_params_m=1e6))
    assert "rejected" not in result.metrics and result.metrics["epoch"] == 1 and not result.rejected


@pytest.mark.parametrize("bad", [0, -1.0, True, "fast"])
def test_bad_constraint_values_are_one_line_errors(bad):
    with pytest.raises(ValueError, match=r"constraints.max_latency_ms=.* must be a number > 0 \(or null\)"):
        Constraints(max_latency_ms=bad)
