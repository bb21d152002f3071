import pytest
import torch
from torch import nn

from trials import PRECISIONS, ProbeConfig, measure_latency
from trials.probe import count_flops_g, count_params_m, device_info


def test_latency_is_positive_and_train_mode_is_restored(tiny_cnn):
    model = tiny_cnn()
    model.train()
    model[1].eval()  # a submodule in its own mode must come back as it was
    result = measure_latency(model, ProbeConfig(warmup=2, runs=5), input_shape=(1, 16, 16), device="cpu")
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
    info = device_info("cpu", ProbeConfig())
    assert info["threads"] >= 1 and info["torch_version"] and info["device_name"]
    assert info["latency_precision"] == "fp32" and info["latency_layout"] == "contiguous"
    assert device_info("cpu", ProbeConfig(precision="bf16", channels_last=True))["latency_layout"] == "channels_last"
    machine = device_info("cpu")  # without a probe: only what the machine is (benchmark headers)
    assert set(machine) == {"device_name", "torch_version", "threads"}


def test_throughput_batch_keys_name_the_batch(tiny_cnn):
    result = measure_latency(tiny_cnn(), ProbeConfig(warmup=1, runs=3), input_shape=(1, 16, 16), device="cpu",
                             batch_size=4)
    assert set(result) == {"latency_b4_ms", "latency_b4_iqr_ms"} and result["latency_b4_ms"] > 0


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_every_precision_runs_on_a_copy(tiny_cnn, precision):
    model = tiny_cnn()
    probe = ProbeConfig(warmup=1, runs=2, precision=precision, channels_last=True)
    result = measure_latency(model, probe, input_shape=(1, 16, 16), device="cpu")
    assert result["latency_ms"] > 0
    assert model[0].weight.dtype == torch.float32 and model[0].weight.is_contiguous()


def test_unknown_precision_is_one_line_naming_the_choices():
    with pytest.raises(ValueError, match="unknown latency precision 'int8'; valid: fp32, bf16, fp16$"):
        ProbeConfig(precision="int8")


@pytest.mark.parametrize("field, message", [
    (dict(runs=0), "latency runs=0 must be >= 1"),
    (dict(warmup=-1), "latency warmup=-1 must be >= 0"),
    (dict(batch=-1), r"latency batch=-1 must be >= 0 \(0 = no throughput latency\)"),
])
def test_bad_probe_settings_are_one_line_errors(field, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        ProbeConfig(**field)


def test_batch_sizes_are_1_then_the_throughput_batch():
    assert ProbeConfig(batch=32).batch_sizes == (1, 32)
    assert ProbeConfig(batch=1).batch_sizes == ProbeConfig(batch=0).batch_sizes == (1,)


def test_reference_is_timed_interleaved_and_gives_a_ratio():
    torch.manual_seed(0)
    small = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    big = torch.nn.Sequential(torch.nn.Conv2d(1, 64, 3), torch.nn.Conv2d(64, 64, 3), torch.nn.Flatten(),
                              torch.nn.LazyLinear(10))
    x = torch.zeros(1, 1, 16, 16)
    small(x), big(x)  # materialise the lazy layers
    out = measure_latency(big, ProbeConfig(warmup=2, runs=9), input_shape=(1, 16, 16), device="cpu", reference=small)
    assert set(out) == {"latency_ms", "latency_iqr_ms", "latency_rel"}
    assert out["latency_rel"] > 1  # ~100x the work of the reference
    out = measure_latency(big, ProbeConfig(warmup=1, runs=3), input_shape=(1, 16, 16), device="cpu", batch_size=4,
                          reference=big)
    # the same model as its own reference: about 1, bounded loosely since a loaded machine times noisily
    assert set(out) == {"latency_b4_ms", "latency_b4_iqr_ms", "latency_b4_rel"} and 0.05 < out["latency_b4_rel"] < 20
