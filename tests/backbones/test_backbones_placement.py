"""Contract: every registered attention type x every backbone family x every position, plus placement details.

Each contract case puts the attention type into one stage (stage 1: 14x14 or 7x7 at 28x28 input with
small_input, so even non-local attention is cheap) of one family, at one position, in the last block of the stage,
and checks: output shape, train and eval forward, identical outputs from two builds under the same seed,
gradients into the inserted module, and parameter accounting (added = inserted - replaced SE modules).
Positions a family does not support must fail with the one-line error instead. Adding a type, position or
family adds coverage for free.
"""
from __future__ import annotations

from functools import lru_cache

import pytest
import timm
import torch
from torch import nn

from backbones import ATTENTION, POSITIONS, build, make_attention
from backbones.build import stage_channels, stage_positions
from backbones.placement import apply_small_input, find_stages
from spaces import available_spaces, load_space

FAMILIES = ("resnet10t", "mobilenetv3_small_100", "efficientnet_b0", "regnetx_002", "convnext_atto")
STAGE = 1  # the stage each contract case inserts into
IN_CHANS, SIZE, BATCH = 1, 28, 2  # Fashion-MNIST-sized input; batch 2 so train-mode BN has > 1 value per channel
KNOBS = {"reduction": 4, "kernel_size": 3}  # valid at stage 1 of every family (>= 24 channels)
SUPPORT = {  # position -> families (of FAMILIES and resnet50) whose stage-1 blocks support it
    "after_block": set(FAMILIES) | {"resnet50"},
    "stage_end": set(FAMILIES) | {"resnet50"},
    "in_block": {"resnet10t", "resnet50", "mobilenetv3_small_100", "efficientnet_b0", "regnetx_002"},
}


def _params(module: nn.Module | None) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def _spec(name: str, position: str, blocks: str = "last") -> dict:
    spec = {"attn": name, "position": position, "blocks": blocks}
    spec.update({k: v for k, v in KNOBS.items() if k in ATTENTION[name].knobs})
    return spec


def _arch(backbone: str, spec: dict, *, stage: int = STAGE, num_stages: int | None = None) -> dict:
    stages = [{"attn": "none"} for _ in range(num_stages or len(stage_channels(backbone=backbone)))]
    stages[stage] = spec
    return {"backbone": backbone, "in_chans": IN_CHANS, "num_classes": 10, "small_input": True, "stages": stages}


@lru_cache(maxsize=None)
def _plain(backbone: str) -> nn.Module:
    """The plain small-input timm model (cached: read-only)."""
    model = timm.create_model(backbone, pretrained=False, in_chans=IN_CHANS, num_classes=10)
    apply_small_input(model, stages=find_stages(model))
    return model


def _targets(stage: nn.Module, blocks: str) -> list[str]:
    names = [n for n, _ in stage.named_children() if n != "attn"]
    return names if blocks == "every" else names[-1:]


def _inserted_and_replaced(model: nn.Module, backbone: str, spec: dict, *, stage: int = STAGE):
    """(modules build() inserted, modules they replaced in the plain model)."""
    name = find_stages(_plain(backbone))[stage]
    built, plain = model.get_submodule(name), _plain(backbone).get_submodule(name)
    if spec["position"] == "stage_end":
        return [built.attn], []
    blocks = _targets(plain, spec.get("blocks", "every"))
    if spec["position"] == "after_block":
        return [getattr(built, b)[1] for b in blocks], []
    return [getattr(built, b).se for b in blocks], [getattr(plain, b).se for b in blocks]


def _wake_residual_branches(model: nn.Module) -> None:
    """Set zero-initialised norm weights to 1 before a gradient check.

    timm zero-inits the last norm of each residual branch (ResNet ``bn2`` / ``bn3``, RegNet ``conv3.bn``), so at
    init an ``in_block`` module sees an all-zero input (ResNet) or feeds a zeroed branch (RegNet) and its parameter
    gradients are exactly 0; the first optimiser step makes them non-zero. The check is about connectivity.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and not m.weight.any():
                m.weight.fill_(1.0)


def _cases():
    for name in ATTENTION:
        for backbone in FAMILIES:
            for position in (["after_block"] if name == "none" else POSITIONS):  # none places nothing
                yield pytest.param(name, backbone, position, id=f"{name}-{backbone}-{position}")


@pytest.mark.parametrize("name,backbone,position", list(_cases()))
def test_contract(name, backbone, position):
    spec = _spec(name, position)
    arch = _arch(backbone, spec)
    if name != "none" and backbone not in SUPPORT[position]:
        with pytest.raises(ValueError, match=f"position '{position}' is not supported by ") as info:
            build(arch)
        assert "valid positions here: after_block, stage_end" in str(info.value) and "\n" not in str(info.value)
        return
    torch.manual_seed(0)
    model = build(arch)
    torch.manual_seed(0)
    twin = build(arch)
    x = torch.randn(BATCH, IN_CHANS, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.eval()(x)
        assert out.shape == (BATCH, 10) and torch.equal(out, twin.eval()(x))
    _wake_residual_branches(model)
    out = model.train()(x)
    assert out.shape == (BATCH, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()

    if name == "none":
        assert _params(model) == _params(_plain(backbone))
        return
    inserted, replaced = _inserted_and_replaced(model, backbone, spec)
    assert len(inserted) == 1
    kind = type(make_attention(name, channels=64, **{k: v for k, v in spec.items() if k in KNOBS}))
    assert all(type(m) is kind for m in inserted)
    assert _params(model) - _params(_plain(backbone)) == sum(map(_params, inserted)) - sum(map(_params, replaced))
    for m in inserted:
        params = list(m.parameters())
        assert all(p.grad is not None for p in params)
        assert not params or any(p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("backbone", ["resnet50", "resnet18", "regnety_002"])
def test_bottlenecks_and_multi_block_stages(backbone, position):
    """Bottleneck ResNet, two-block ResNet stages and RegNetY (whose blocks own an SE) with blocks: every."""
    spec = _spec("se", position, blocks="every")
    torch.manual_seed(0)
    model = build(_arch(backbone, spec, stage=2))
    out = model(torch.randn(BATCH, IN_CHANS, SIZE, SIZE))
    assert out.shape == (BATCH, 10)
    inserted, replaced = _inserted_and_replaced(model, backbone, spec, stage=2)
    blocks = len(list(stage_of(backbone, 2).children()))
    assert blocks >= 2 and len(inserted) == (1 if position == "stage_end" else blocks)
    assert _params(model) - _params(_plain(backbone)) == sum(map(_params, inserted)) - sum(map(_params, replaced))


@pytest.mark.parametrize("position", ["after_block", "in_block"])
@pytest.mark.parametrize("backbone", ["resnet18", "regnetx_002", "efficientnet_b0"])
def test_blocks_last_touches_only_the_last_block(backbone, position):
    name = find_stages(_plain(backbone))[2]  # stage 2 has >= 2 blocks in these families
    every = build(_arch(backbone, _spec("eca", position, "every"), stage=2)).get_submodule(name)
    last = build(_arch(backbone, _spec("eca", position, "last"), stage=2)).get_submodule(name)
    eca = type(make_attention("eca", channels=64))
    count = lambda stage: sum(type(m) is eca for m in stage.modules())  # noqa: E731
    blocks = len(list(stage_of(backbone, 2).children()))
    assert blocks >= 2 and count(every) == blocks and count(last) == 1
    assert count(last.get_submodule(_targets(stage_of(backbone, 2), "last")[0])) == 1


def stage_of(backbone: str, index: int) -> nn.Module:
    return _plain(backbone).get_submodule(find_stages(_plain(backbone))[index])


def test_stage_end_ignores_blocks():
    a = build(_arch("resnet18", _spec("se", "stage_end", "every")))
    b = build(_arch("resnet18", _spec("se", "stage_end", "last")))
    assert _params(a) == _params(b) and isinstance(a.layer2.attn, nn.Module) and len(a.layer2) == 3


@pytest.mark.parametrize("backbone,stage,widths", [
    ("resnet10t", 1, [128]),            # BasicBlock: SE slot after bn2, at the output width
    ("resnet50", 0, [256, 256, 256]),   # Bottleneck: after bn3, at the output width (planes * 4)
    ("regnetx_002", 2, [152] * 4),      # RegNet Bottleneck: after conv2, bottleneck width (bottle_ratio 1)
    ("mobilenetv3_small_100", 0, [16]),         # DepthwiseSeparableConv: the depthwise width
    ("mobilenetv3_small_100", 1, [72, 88]),     # InvertedResidual: the expanded widths
    ("efficientnet_b0", 1, [96, 144]),
])
def test_in_block_channels_are_the_se_slot_width(backbone, stage, widths):
    spec = {"attn": "se", "reduction": 4, "position": "in_block"}
    model = build(_arch(backbone, spec, stage=stage))
    inserted, replaced = _inserted_and_replaced(model, backbone, spec, stage=stage)
    assert [m.fc1.in_channels for m in inserted] == widths
    for old, width in zip(replaced, widths):  # where timm had its own SE, it was built for the same width
        if old is not None and _params(old):
            assert next(old.parameters()).shape[1] == width


def test_in_block_error_on_convnext_names_block_and_choices():
    with pytest.raises(ValueError) as info:
        build(_arch("convnext_atto", _spec("se", "in_block"), stage=0))
    assert str(info.value) == ("stage 0 (stages.0.blocks) of convnext_atto: position 'in_block' is not supported "
                               "by ConvNeXtBlock blocks; valid positions here: after_block, stage_end")


def test_stage_positions():
    assert stage_positions(backbone="mobilenetv3_small_100") == [
        ("after_block", "stage_end", "in_block")] * 3 + [("after_block", "stage_end")]
    assert stage_positions(backbone="convnext_atto") == [("after_block", "stage_end")] * 4
    assert stage_positions(backbone="resnet50") == [tuple(POSITIONS)] * 4


@pytest.mark.parametrize("space", available_spaces())
def test_shipped_spaces_offer_only_supported_positions(space):
    """A space may offer in_block only where its backbones' blocks have the slot, with ratios that fit there."""
    s = load_space(space)
    for budget in s.budgets.values():
        supported = stage_positions(backbone=budget.backbone, backbone_kwargs=budget.backbone_kwargs)
        for stage in s.stages:
            assert set(stage.position) <= set(supported[stage.index]), (space, budget.backbone, stage)
            if "in_block" in stage.position and stage.reduction:
                spec = {"attn": "se", "reduction": max(stage.reduction), "position": "in_block"}
                arch = _arch(budget.backbone, spec, stage=stage.index, num_stages=s.num_stages)
                if budget.backbone_kwargs:
                    arch["backbone_kwargs"] = dict(budget.backbone_kwargs)
                build(arch)
