"""Behaviours specific to the modules in backbones/modules.py and the LEFT_OUT list."""
from __future__ import annotations

import pytest
import torch

from backbones import ATTENTION, make_attention
from backbones.attention import LEFT_OUT


def test_sa_is_identity_at_init_and_gamma_learns():
    torch.manual_seed(0)
    module = make_attention("sa", channels=16, reduction=4)
    assert module.gamma.item() == 0
    x = torch.randn(2, 16, 5, 5)
    y = module(x)
    torch.testing.assert_close(y, x)
    y.square().sum().backward()
    assert module.gamma.grad is not None and module.gamma.grad.abs() > 0


@pytest.mark.parametrize("name", ["bam", "triplet", "spatial", "psa", "sa"])
@pytest.mark.parametrize("shape", [(2, 16, 7, 7), (2, 64, 1, 1), (1, 16, 1, 5)])
def test_new_modules_keep_shape(name, shape):
    module = make_attention(name, channels=shape[1]).train()
    assert module(torch.randn(shape)).shape == shape


def test_spatial_kernel_size_sets_conv_shape():
    for k in (3, 5, 7):
        assert make_attention("spatial", channels=16, kernel_size=k).conv.weight.shape == (1, 2, k, k)


def test_psa_branches_normalise_over_different_axes():
    # collect: each target's weights over sources sum to 1; distribute: each source's weights over targets.
    torch.manual_seed(0)
    module = make_attention("psa", channels=16, reduction=4)
    captured = {}
    for name in ("collect", "distribute"):
        branch = getattr(module, name)
        branch.register_forward_hook(lambda m, i, o, name=name: captured.setdefault(name, o))
    x = torch.randn(1, 16, 3, 4)
    module(x)
    assert captured["collect"].shape == captured["distribute"].shape == (1, 4, 3, 4)
    assert not torch.allclose(captured["collect"], captured["distribute"])


def test_channel_multiple_is_checked_with_one_line_error():
    with pytest.raises(ValueError, match="'lambda' needs channels divisible by 4; got 18"):
        make_attention("lambda", channels=18)
    with pytest.raises(ValueError, match="'splat' needs channels divisible by 2"):
        make_attention("splat", channels=15)


def test_left_out_names_are_not_registered_and_have_reasons():
    assert LEFT_OUT
    for name, reason in LEFT_OUT.items():
        assert name not in ATTENTION
        assert reason.strip() and "\n" not in reason


def test_main_lists_left_out_types(capsys):
    from backbones.__main__ import main
    main()
    out = capsys.readouterr().out
    tail = out.split("left out", 1)[1]
    assert all(f"\n{name} " in tail for name in LEFT_OUT)
