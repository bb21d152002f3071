"""Contract tests for build(arch): every attention type through every backbone family, plus validation."""
from __future__ import annotations

import importlib
from functools import lru_cache

import pytest
import timm
import torch
from torch import nn

from backbones import (ATTENTION, AttentionPool2d, POSITIONS, SUPPORTED_BACKBONES, build, canonical, make_attention,
                       stage_channels)
from backbones.placement import apply_small_input, block_channels, declared_stage_channels, find_stages

STAGES = {  # feature_info stages per tested family
    "resnet10t": ["layer1", "layer2", "layer3", "layer4"],
    "resnet18": ["layer1", "layer2", "layer3", "layer4"],
    "resnet50": ["layer1", "layer2", "layer3", "layer4"],
    "mobilenetv3_small_100": ["blocks.0", "blocks.1", "blocks.3", "blocks.5"],
    "mobilenetv3_large_100": ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"],
    "mobilenetv3_small_075": ["blocks.0", "blocks.1", "blocks.3", "blocks.5"],
    "efficientnet_b0": ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"],
    "efficientnet_lite0": ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"],
    "regnety_002": ["s1", "s2", "s3", "s4"],
    "regnetx_002": ["s1", "s2", "s3", "s4"],
    "convnext_atto": ["stages.0.blocks", "stages.1.blocks", "stages.2.blocks", "stages.3.blocks"],
    "mobilenetv2_050": [f"blocks.{i}" for i in range(7)],  # every block group (feature_info names 0, 1, 2, 4, 6)
}
CHANNELS = {
    "resnet10t": [64, 128, 256, 512],
    "resnet18": [64, 128, 256, 512],
    "resnet50": [256, 512, 1024, 2048],
    "mobilenetv3_small_100": [16, 24, 48, 576],
    "mobilenetv3_large_100": [16, 24, 40, 112, 960],
    "mobilenetv3_small_075": [16, 24, 40, 432],
    "efficientnet_b0": [16, 24, 40, 112, 320],
    "efficientnet_lite0": [16, 24, 40, 112, 320],
    "regnety_002": [24, 56, 152, 368],
    "regnetx_002": [24, 56, 152, 368],
    "convnext_atto": [40, 80, 160, 320],
    "mobilenetv2_050": [8, 16, 16, 32, 48, 80, 160],  # 32 and 80: blocks.3 / blocks.5, measured by a dry run
}
FAMILIES = ["resnet10t", "resnet50", "mobilenetv3_small_100", "efficientnet_b0", "regnetx_002", "convnext_atto"]
INPUTS = [(1, 28), (3, 32)]  # (in_chans, size): Fashion-MNIST, CIFAR


def _arch(backbone: str, stages: list[dict], *, in_chans: int = 3, small_input: bool = True) -> dict:
    return {"backbone": backbone, "in_chans": in_chans, "num_classes": 10, "small_input": small_input,
            "stages": stages}


def _spec(name: str, position: str = "after_block") -> dict:
    knobs = {"reduction": 4, "kernel_size": 5}  # valid at every stage of every tested family
    spec = {"attn": name, "position": position}
    spec.update({k: v for k, v in knobs.items() if k in ATTENTION[name].knobs})
    return spec


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@lru_cache(maxsize=None)
def _plain(backbone: str, *, in_chans: int, small_input: bool = True) -> nn.Module:
    """The plain timm model, by default with the small-input stem (cached: treat as read-only)."""
    model = timm.create_model(backbone, pretrained=False, in_chans=in_chans, num_classes=10)
    if small_input:
        apply_small_input(model, stages=find_stages(model))
    return model


def _expected_attention_params(backbone: str, spec: dict) -> int:
    model = _plain(backbone, in_chans=3)
    knobs = {k: v for k, v in spec.items() if k not in ("attn", "position")}
    total = 0
    for name, out_chs in zip(STAGES[backbone], CHANNELS[backbone]):
        blocks = len(list(model.get_submodule(name).children())) if spec["position"] == "after_block" else 1
        total += blocks * _params(make_attention(spec["attn"], channels=out_chs, **knobs))
    return total


def _inserted(model: nn.Module, backbone: str, position: str) -> list[nn.Module]:
    """The attention modules build() inserted (not the ones timm blocks already contain)."""
    stages = [model.get_submodule(n) for n in STAGES[backbone]]
    if position == "stage_end":
        return [stage.attn for stage in stages]
    return [block[1] for stage in stages for block in stage.children()]


def _check_contract(backbone: str, spec: dict, *, small_input: bool = True) -> None:
    """Shape on both inputs, parameter accounting, gradients into every inserted attention module."""
    stages = [spec] * len(STAGES[backbone])
    batch = 1 if small_input else 2  # batch 1 keeps CPU time down; without small_input the last map is 1x1
    for in_chans, size in reversed(INPUTS):  # and train-mode BN needs >1 value per channel
        torch.manual_seed(0)
        model = build(_arch(backbone, stages, in_chans=in_chans, small_input=small_input)).train()
        added = _params(model) - _params(_plain(backbone, in_chans=in_chans, small_input=small_input))
        assert added == _expected_attention_params(backbone, spec)
        out = model(torch.randn(batch, in_chans, size, size))
        assert out.shape == (batch, 10)
    out.logsumexp(1).sum().backward()  # gradients checked on the last input (1x28x28) only
    if spec["attn"] == "none":
        return
    attn = _inserted(model, backbone, spec["position"])
    kind = type(make_attention(spec["attn"], channels=64))
    assert attn and all(type(m) is kind for m in attn)
    for m in attn:
        params = list(m.parameters())
        assert all(p.grad is not None for p in params)
        assert not params or any(p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("backbone", ["resnet10t", "mobilenetv3_small_100"])
@pytest.mark.parametrize("name", list(ATTENTION))
def test_every_type_in_every_family(backbone, name):
    position = "stage_end" if list(ATTENTION).index(name) % 3 == 2 else "after_block"
    _check_contract(backbone, _spec(name, position=position))


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "mobilenetv3_large_100", "efficientnet_lite0",
                                      "regnety_002", "regnetx_002"])
@pytest.mark.parametrize("name", ["se", "cbam"])
def test_more_families(backbone, name):
    # small_input=False keeps the bigger nets cheap on CPU; the stem change is covered above and in
    # test_backbones_placement. (ConvNeXt needs small_input at 28x28: its /32 stride leaves 1x1 before a 2x2 conv.)
    _check_contract(backbone, _spec(name), small_input=False)


@pytest.mark.parametrize("backbone", sorted(STAGES))
def test_stages_and_channels(backbone):
    assert find_stages(timm.create_model(backbone, pretrained=False)) == STAGES[backbone]
    state = torch.random.get_rng_state()
    assert stage_channels(backbone=backbone, in_chans=1) == CHANNELS[backbone]
    assert torch.equal(state, torch.random.get_rng_state())  # probing does not shift the caller's RNG
    assert backbone in SUPPORTED_BACKBONES
    model = timm.create_model(backbone, pretrained=False)
    per_block = block_channels(model, stages=STAGES[backbone], in_chans=3)
    assert [set(chs) for chs in per_block] == [{c} for c in CHANNELS[backbone]]  # one width per stage


def test_stage_channels_come_from_feature_info_and_from_a_dry_run_only_where_it_is_silent(monkeypatch):
    module = importlib.import_module("backbones.build")  # the module; ``backbones.build`` is the function
    kwargs = {"channels": [24, 48, 96, 192]}  # a cache key no other test uses
    dry_runs = []
    real = module.block_channels
    monkeypatch.setattr(module, "block_channels", lambda *a, **k: dry_runs.append(1) or real(*a, **k))
    assert stage_channels(backbone="resnet10t", in_chans=1, backbone_kwargs=kwargs) == [24, 48, 96, 192]
    assert dry_runs == []  # feature_info declared every stage: no forward pass
    model = timm.create_model("resnet10t", pretrained=False)
    model.feature_info[2]["hook_type"] = "forward_pre"  # an entry that does not hook the stage's output
    assert declared_stage_channels(model) == [64, None, 256, 512]  # feature_info[0] is the stem, not a stage
    monkeypatch.setattr(module, "declared_stage_channels", lambda model: [None] * len(find_stages(model)))
    module._stage_channels.cache_clear()
    try:
        assert stage_channels(backbone="resnet10t", in_chans=1, backbone_kwargs=kwargs) == [24, 48, 96, 192]
        assert dry_runs == [1]
    finally:
        module._stage_channels.cache_clear()


@pytest.mark.parametrize("backbone", FAMILIES)
@pytest.mark.parametrize("in_chans,size", INPUTS)
def test_none_everywhere_is_the_plain_timm_model(backbone, in_chans, size):
    torch.manual_seed(0)
    model = build(_arch(backbone, [{"attn": "none"}] * len(STAGES[backbone]), in_chans=in_chans)).eval()
    torch.manual_seed(0)
    plain = _plain.__wrapped__(backbone, in_chans=in_chans).eval()
    assert _params(model) == _params(plain)
    assert model.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, in_chans, size, size)
    assert torch.equal(model(x), plain(x))


@pytest.mark.parametrize("backbone", FAMILIES)
def test_attention_pool_head_starts_as_average_pooling_and_learns(backbone):
    """attn_pool's score layer starts at zero, so at init it equals timm's average pool; then it trains."""
    stages = [{"attn": "none"}] * len(STAGES[backbone])
    torch.manual_seed(0)
    model = build({**_arch(backbone, stages), "head": "attn_pool"}).eval()
    torch.manual_seed(0)
    plain = _plain.__wrapped__(backbone, in_chans=3).eval()
    pools = [m for m in model.modules() if isinstance(m, AttentionPool2d)]
    assert len(pools) == 1 and _params(model) == _params(plain) + _params(pools[0])
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), plain(x), atol=1e-5)
    model.train()
    model(x).square().sum().backward()
    assert pools[0].score.weight.grad.abs().sum() > 0  # the scores receive gradient, so pooling can learn


def test_same_seed_same_weights():
    arch = _arch("resnet10t", [_spec("se"), _spec("cbam"), _spec("nl"), _spec("coord", "stage_end")])
    torch.manual_seed(1)
    a = build(arch).state_dict()
    torch.manual_seed(1)
    b = build(arch).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("backbone,sizes", [
    ("resnet10t", [28, 14, 7, 4]), ("resnet50", [28, 14, 7, 4]), ("mobilenetv3_small_100", [14, 7, 4, 2]),
    ("efficientnet_b0", [28, 14, 7, 4, 2]), ("regnetx_002", [14, 7, 4, 2]), ("convnext_atto", [28, 14, 7, 3]),
])
def test_small_input_stage_resolutions(backbone, sizes):
    model = build(_arch(backbone, [{"attn": "none"}] * len(STAGES[backbone]), in_chans=1))
    feats = model.forward_intermediates(torch.zeros(1, 1, 28, 28), intermediates_only=True)
    assert [f.shape[-1] for f in feats][-len(sizes):] == sizes
    assert model.pretrained_cfg["first_conv"] and model.get_submodule(model.pretrained_cfg["first_conv"]).stride == (1, 1)


def test_small_input_convnext_stem_is_a_3x3_stride_1_conv():
    model = build(_arch("convnext_atto", [{"attn": "none"}] * 4, in_chans=1))
    stem = model.stem[0]
    assert (stem.kernel_size, stem.stride, stem.padding) == ((3, 3), (1, 1), (1, 1))
    assert stem.weight.shape == (40, 1, 3, 3)


def test_small_input_keeps_resolution_into_first_stage():
    model = build(_arch("resnet10t", [{"attn": "none"}] * 4, in_chans=1))
    assert isinstance(model.maxpool, nn.Identity) and model.conv1[0].stride == (1, 1)
    feats = model.forward_intermediates(torch.zeros(1, 1, 28, 28), intermediates_only=True)
    assert [f.shape[-1] for f in feats[1:]] == [28, 14, 7, 4]


def test_positions_place_the_right_number_of_modules():
    spec = [{"attn": "se", "position": "stage_end"}, _spec("se"), {"attn": "none"}, {"attn": "none"}]
    model = build(_arch("resnet18", spec))
    assert isinstance(model.layer1.attn, nn.Module) and len(model.layer1) == 3
    assert all(isinstance(b, nn.Sequential) and len(b) == 2 for b in model.layer2)


@pytest.mark.parametrize("change,needle", [
    ({"backbone": "resnet_nope"}, "'resnet_nope'"),
    ({"stages": [{"attn": "none"}] * 3}, "has 4 stages"),
    ({"stages": [{"attn": "nope"}] + [{"attn": "none"}] * 3}, "'nope'"),
    ({"stages": [{"attn": "eca", "reduction": 8}] + [{"attn": "none"}] * 3}, "'reduction'"),
    ({"stages": [{"attn": "se", "reduction": 32}] + [{"attn": "none"}] * 3}, "reduction=32"),
    ({"stages": [{"attn": "cbam", "kernel_size": 4}] + [{"attn": "none"}] * 3}, "kernel_size=4"),
    ({"stages": [{"attn": "se", "position": "inside"}] + [{"attn": "none"}] * 3}, "'inside'"),
    ({"stages": [{"attn": "se", "blocks": "first"}] + [{"attn": "none"}] * 3}, "unknown blocks 'first'; valid: every, last"),
    ({"stages": [{"attn": "none"}] * 3 + [{"attn": "se", "position": "in_block"}]},
     "stage 3 (blocks.5) of mobilenetv3_small_100: position 'in_block' is not supported by ConvBnAct blocks; "
     "valid positions here: after_block, stage_end"),
    ({"stages": [{"attn": "none"}] * 5}, "has 4 stages (0..3: blocks.0, blocks.1, blocks.3, blocks.5); ArchConfig gives 5"),
    ({"stages": [{"attn": "se", "ratio": 4}] + [{"attn": "none"}] * 3}, "'ratio'"),
    ({"stages": [{"reduction": 4}] + [{"attn": "none"}] * 3}, "'attn'"),
    ({"in_chans": 0}, "in_chans=0"),
    ({"depth": 3}, "'depth'"),
    ({"small_input": "yes"}, "small_input='yes'"),
    ({"head": "max"}, "unknown head 'max'; valid heads: avg, attn_pool"),
])
def test_bad_arch_raises_one_line_value_error(change, needle):
    arch = {**_arch("mobilenetv3_small_100", [{"attn": "none"}] * 4), **change}
    with pytest.raises(ValueError) as info:
        build(arch)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_reduction_error_names_stage_and_channels():
    arch = _arch("mobilenetv3_small_100", [{"attn": "se", "reduction": 32}] + [{"attn": "none"}] * 3)
    with pytest.raises(ValueError, match=r"stage 0 \(blocks.0\).*16 channels"):
        build(arch)


def test_missing_key_is_reported():
    arch = _arch("resnet10t", [{"attn": "none"}] * 4)
    del arch["num_classes"]
    with pytest.raises(ValueError, match="num_classes"):
        build(arch)


def test_arch_config_round_trips_and_canonicalises() -> None:
    """ArchConfig is the contract: JSON round trip, one-line errors, one spelling per computation."""
    from backbones import ArchConfig, StageConfig

    raw = {"backbone": "resnet18", "in_chans": 3, "num_classes": 10, "small_input": True, "head": "avg",
           "stages": [{"attn": "none"}, {"attn": "se", "reduction": 8},
                      {"attn": "eca", "kernel_size": 5, "position": "in_block", "blocks": "last"},
                      {"attn": "cbam", "reduction": 16, "kernel_size": 7, "position": "stage_end", "blocks": "last"}]}
    arch = ArchConfig.from_dict(raw)
    assert ArchConfig.from_dict(arch.to_dict()) == arch and hash(ArchConfig.from_dict(arch.to_dict())) == hash(arch)
    assert str(arch) == "- | se/r8 | eca/k5@in_block@last | cbam/r16/k7@stage_end"
    assert arch.params()["s1.reduction"] == "8" and "s0.reduction" not in arch.params()
    # resnet18 has 2 blocks per stage: after_block@last is one module after the last block, i.e. stage_end
    last = arch.to_dict()
    last["stages"][1] = {"attn": "se", "reduction": 8, "position": "after_block", "blocks": "last"}
    end = arch.to_dict()
    end["stages"][1] = {"attn": "se", "reduction": 8, "position": "stage_end"}
    assert ArchConfig.from_dict(last) != ArchConfig.from_dict(end)
    assert canonical(ArchConfig.from_dict(last)) == canonical(ArchConfig.from_dict(end))
    assert canonical(arch).stages[3].blocks == "every"  # blocks means nothing at stage_end
    assert canonical(arch) != canonical(ArchConfig.from_dict({**raw, "head": "attn_pool"}))
    assert arch.plain().is_plain and canonical(arch.plain()) == arch.plain()
    # resnet10t has one block per stage: every == last, and after_block == stage_end
    one = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                     stages=(StageConfig("se", reduction=8),) + (StageConfig(),) * 3)
    same = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                      stages=(StageConfig("se", reduction=8, position="stage_end"),) + (StageConfig(),) * 3)
    assert canonical(one) == canonical(same) and len({canonical(one), canonical(same)}) == 1
    with pytest.raises(ValueError, match="does not take knob 'kernel_size'"):
        StageConfig("se", reduction=8, kernel_size=3)
    with pytest.raises(ValueError, match="stage 1: unknown key"):
        ArchConfig.from_dict({**raw, "stages": [{"attn": "none"}, {"attn": "se", "ratio": 8}, {"attn": "none"},
                                                {"attn": "none"}]})
