import pytest
from torch import nn

from trials import measure_latency
from trials.probe import count_flops_g, count_params_m, device_info


def test_latency_is_positive_and_train_mode_is_restored(tiny_cnn):
    model = tiny_cnn()
    model.train()
    model[1].eval()  # a submodule in its own mode must come back as it was
    result = measure_latency(model, input_shape=(1, 16, 16), device="cpu", warmup=2, runs=5)
    assert result["latency_ms"] > 0 and result["latency_iqr_ms"] >= 0
    assert model.training and model[0].training and not model[1].training


def test_flops_of_a_known_conv_match_hand_count():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # 2 FLOPs per multiply-add: 2 * Cout * H * W * Cin * k * k
    expected = 2 * 8 * 32 * 32 * 3 * 3 * 3 / 1e9
    assert count_flops_g(conv, input_shape=(3, 32, 32), device="cpu") == pytest.approx(expected)
    assert conv.training


def test_params_and_device_info():
    assert count_params_m(nn.Linear(10, 100)) == pytest.approx(1100 / 1e6)
    info = device_info("cpu")
    assert info["threads"] >= 1 and info["torch_version"] and info["device_name"]
