"""Contract over the latency probe's runtimes (trials.runtime.RUNTIMES): each runs the very model (same logits as
eager, on CPU fp32) and gives the probe's keys; bad settings are one-line errors."""
from __future__ import annotations

import pytest
import torch

from backbones import build
from trials import RUNTIMES, ProbeConfig, measure_latency

ARCH = {"backbone": "resnet10t", "backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8}, "in_chans": 1,
        "num_classes": 10, "small_input": True, "head": "attn_pool",
        "stages": [{"attn": "eca", "kernel_size": 3}, {"attn": "none"}, {"attn": "cbam", "reduction": 8},
                   {"attn": "nl", "reduction": 8}]}


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_every_runtime_runs_the_same_model(runtime: str) -> None:
    torch.manual_seed(0)
    model = build(ARCH).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        expected = model(x)
    got = RUNTIMES[runtime](model, x)()
    got = got[0] if isinstance(got, list) else got
    assert torch.allclose(torch.as_tensor(got), expected, atol=1e-4)


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_every_runtime_gives_the_probe_keys(runtime: str) -> None:
    model, reference = build(ARCH), build({**ARCH, "stages": [{"attn": "none"}] * 4, "head": "avg"})
    result = measure_latency(model, ProbeConfig(runs=3, warmup=1, batch=0, runtime=runtime), input_shape=(1, 28, 28),
                             device="cpu", reference=reference)
    assert set(result) == {"latency_ms", "latency_iqr_ms", "latency_rel"}
    assert result["latency_ms"] > 0 and result["latency_rel"] > 0
    assert model.training  # the probe restores train mode


def test_bad_runtime_settings_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown latency runtime 'tflite'; valid: torch, onnxruntime"):
        ProbeConfig(runtime="tflite")
    with pytest.raises(ValueError, match="times fp32 models"):
        ProbeConfig(runtime="onnxruntime", precision="bf16")
