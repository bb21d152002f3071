import pytest
import torch
from torch import nn

from trials import PRECISIONS, measure_latency
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
    assert info["latency_precision"] == "fp32" and info["latency_layout"] == "contiguous"
    assert device_info("cpu", precision="bf16", channels_last=True)["latency_layout"] == "channels_last"


def test_throughput_batch_keys_name_the_batch(tiny_cnn):
    result = measure_latency(tiny_cnn(), input_shape=(1, 16, 16), device="cpu", batch_size=4, warmup=1, runs=3)
    assert set(result) == {"latency_b4_ms", "latency_b4_iqr_ms"} and result["latency_b4_ms"] > 0


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_every_precision_runs_on_a_copy(tiny_cnn, precision):
    model = tiny_cnn()
    result = measure_latency(model, input_shape=(1, 16, 16), device="cpu", warmup=1, runs=2, precision=precision,
                             channels_last=True)
    assert result["latency_ms"] > 0
    assert model[0].weight.dtype == torch.float32 and model[0].weight.is_contiguous()


def test_unknown_precision_is_one_line_naming_the_choices(tiny_cnn):
    with pytest.raises(ValueError, match="unknown latency precision 'int8'; valid: fp32, bf16, fp16$"):
        measure_latency(tiny_cnn(), input_shape=(1, 16, 16), device="cpu", precision="int8")


def test_reference_is_timed_interleaved_and_gives_a_ratio():
    torch.manual_seed(0)
    small = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    big = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3), torch.nn.Conv2d(64, 64, 3), torch.nn.Flatten(),
                              torch.nn.LazyLinear(10))
    x = torch.zeros(1, 1, 16, 16)
    small(x), big(x)  # materialise the lazy layers
    out = measure_latency(big, input_shape=(1, 16, 16), device="cpu", warmup=2, runs=9, reference=small)
    assert set(out) == {"latency_ms", "latency_iqr_ms", "latency_rel"}
    assert out["latency_rel"] > 1  # ~100x the work of the reference
    out = measure_latency(big, input_shape=(1, 16, 16), device="cpu", batch_size=4, warmup=1, runs=3, reference=big)
    assert set(out) == {"latency_b4_ms", "latency_b4_iqr_ms", "latency_b4_rel"} and 0.3 < out["latency_b4_rel"] < 3
