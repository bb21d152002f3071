"""Contract tests for the attention registry: every registered type, every offered knob value."""
from __future__ import annotations

import pytest
import torch

from backbones import ATTENTION, KNOB_CHOICES, make_attention
from backbones.attention import KNOBS

CHANNELS = 64


def _signature(module: torch.nn.Module) -> tuple:
    shapes = tuple(tuple(p.shape) for p in module.parameters())
    return sum(p.numel() for p in module.parameters()), shapes


def test_registry_entries_are_consistent():
    assert {"none", "se", "eca", "cbam", "coord", "gc", "nl"} <= set(ATTENTION)
    for name, kind in ATTENTION.items():
        assert kind.name == name
        assert kind.knobs <= KNOBS
        assert name == "none" or kind.paper.startswith("https://")


@pytest.mark.parametrize("name", list(ATTENTION))
def test_module_keeps_shape_and_passes_gradients(name):
    torch.manual_seed(0)
    module = make_attention(name, channels=CHANNELS).train()
    x = torch.randn(2, CHANNELS, 8, 8, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    params = list(module.parameters())
    assert all(p.grad is not None for p in params)
    assert not params or any(p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("name,knob", [(n, k) for n, kind in ATTENTION.items() for k in sorted(kind.knobs)])
def test_every_offered_knob_value_changes_the_module(name, knob):
    signatures = {_signature(make_attention(name, channels=CHANNELS, **{knob: v})) for v in KNOB_CHOICES[knob]}
    assert len(signatures) == len(KNOB_CHOICES[knob])


@pytest.mark.parametrize("name", [n for n, kind in ATTENTION.items() if "reduction" in kind.knobs])
def test_reduction_is_exact_floor_division(name):
    # 40 channels: timm's make_divisible would round 40/16=2.5 to 3 (or up to 8); we want 40 // 16 == 2.
    widths = {make_attention(name, channels=40, reduction=r) for r in (4, 8, 16)}
    assert len({_signature(m) for m in widths}) == 3
    se = make_attention("se", channels=40, reduction=16)
    assert se.fc1.out_channels == 2


@pytest.mark.parametrize("bad,needle", [
    (dict(name="nope"), "'nope'"),
    (dict(name="se", kernel_size=3), "'kernel_size'"),
    (dict(name="none", reduction=4), "'reduction'"),
    (dict(name="eca", reduction=4), "'reduction'"),
    (dict(name="se", reduction=128), "reduction=128"),
    (dict(name="cbam", reduction=0), "reduction=0"),
    (dict(name="eca", kernel_size=4), "kernel_size=4"),
    (dict(name="cbam", kernel_size=-3), "kernel_size=-3"),
    (dict(name="se", reduction=2.5), "reduction=2.5"),
])
def test_bad_requests_raise_one_line_value_error(bad, needle):
    with pytest.raises(ValueError) as info:
        make_attention(channels=CHANNELS, **bad)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid types: .*none.*se"):
        make_attention("nope", channels=CHANNELS)


def test_reduction_error_names_channels():
    with pytest.raises(ValueError, match="16 channels"):
        make_attention("se", channels=16, reduction=32)


def test_main_prints_every_type(capsys):
    from backbones.__main__ import main
    main()
    out = capsys.readouterr().out
    assert all(f"\n{name} " in out for name in ATTENTION)
