"""Contract for issue 37's knobs: explicit block indices (``blocks: [0, 2]``) and stacks (``then``) at every position,
in every backbone family (MobileNetV2 included): each builds, trains a step, exports to a standalone module with
identical outputs and round-trips through ArchConfig JSON; and the canonical form's rules for them."""
from __future__ import annotations

import json

import pytest
import torch

from backbones import ArchConfig, StageConfig, build, canonical, stage_depths, stage_positions
from backbones.build import build_recorded
from backbones.placement import find_stages
from backbones.standalone import standalone_source

SMALL = {"channels": [16, 32, 64, 128]}  # ResNet widths that keep a CPU step cheap
FAMILIES = {  # one per block family: BasicBlock, Bottleneck, MobileNetV3, EfficientNet, RegNet, ConvNeXt, MobileNetV2
    "resnet18": SMALL, "resnet50": SMALL, "mobilenetv3_small_100": {}, "efficientnet_b0": {}, "regnetx_002": {},
    "convnext_atto": {}, "mobilenetv2_050": {},
}
THENS = [{"attn": "spatial", "kernel_size": 3}, {"attn": "eca", "kernel_size": 3}, {"attn": "se", "reduction": 4}]


def _stages(backbone: str) -> list[dict]:
    """Stage i: after_block, in_block and stage_end in turn (where the stage has the slot), each with a stack and,
    where blocks apply, explicit indices (the first and the last block)."""
    kwargs = FAMILIES[backbone]
    stages = []
    for i, (depth, positions) in enumerate(zip(stage_depths(backbone=backbone, backbone_kwargs=kwargs),
                                               stage_positions(backbone=backbone, backbone_kwargs=kwargs))):
        position = ("after_block", "in_block", "stage_end")[i % 3]
        position = position if position in positions else "after_block"
        spec = {"attn": "se", "reduction": 4, "position": position, "then": THENS[i % len(THENS)]}
        if position != "stage_end":
            spec["blocks"] = sorted({0, depth - 1})
        stages.append(spec)
    return stages


@pytest.mark.parametrize("backbone", list(FAMILIES))
def test_indices_and_stacks_build_train_export_and_round_trip(backbone: str) -> None:
    arch = ArchConfig.from_dict({"backbone": backbone, "backbone_kwargs": FAMILIES[backbone], "in_chans": 1,
                                 "num_classes": 10, "small_input": True, "stages": _stages(backbone)})
    assert ArchConfig.from_dict(json.loads(arch.to_json())) == arch  # JSON round trip
    assert canonical(canonical(arch)) == canonical(arch)
    torch.manual_seed(0)
    model, edits = build_recorded(arch)
    model.train()
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([1, 2])
    stacks = [model.get_submodule(e.path + (".1" if e.op == "wrap" else "")) for e in edits
              if e.call is not None and e.call.cls is torch.nn.Sequential]
    assert len(stacks) >= len(arch.stages) and all(len(m) == 2 for m in stacks)  # a stack at every slot
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for m in stacks for p in m.parameters())
    optimizer.step()  # one training step
    assert torch.isfinite(loss)
    model.eval()
    text = standalone_source(arch, docstring="test", weights="absent.safetensors")
    namespace = {"__file__": "/nonexistent/model.py", "__name__": "exported"}
    exec(compile(text, "exported.py", "exec"), namespace)  # noqa: S102 - the generated module under test
    rebuilt = namespace["build_model"](pretrained=False)
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("backbone,depths", [("mobilenetv2_100", [1, 2, 3, 4, 3, 3, 1]),
                                             ("mobilenetv2_050", [1, 2, 3, 4, 3, 3, 1])])
def test_every_mobilenetv2_block_is_reachable_at_every_position(backbone: str, depths: list[int]) -> None:
    """MobileNetV2's stages are its seven block groups (feature_info names five), so every block has a slot."""
    assert stage_depths(backbone=backbone) == depths
    assert all(p == ("after_block", "stage_end", "in_block") for p in stage_positions(backbone=backbone))
    if backbone != "mobilenetv2_050":
        return  # one build per position is enough (the small variant)
    for position, count in (("after_block", sum(depths)), ("in_block", sum(depths)), ("stage_end", len(depths))):
        model = build({"backbone": backbone, "in_chans": 1, "num_classes": 10,
                       "stages": [{"attn": "eca", "kernel_size": 3, "position": position}] * len(depths)})
        assert find_stages(model) == [f"blocks.{i}" for i in range(7)]
        assert sum(type(m).__name__ == "EcaModule" for m in model.modules()) == count


def _stage(**fields) -> StageConfig:
    return StageConfig(**{"attn": "se", "reduction": 8, **fields})


@pytest.mark.parametrize("spec,depth,expected", [
    (_stage(blocks=[1, 0]), 2, _stage(position="after_block")),                      # all indices == every
    (_stage(blocks=[1]), 2, _stage(position="stage_end")),                            # the last one == stage_end
    (_stage(position="in_block", blocks=[2]), 3, _stage(position="in_block", blocks="last")),
    (_stage(position="in_block", blocks=[0]), 1, _stage(position="in_block")),        # one-block stage
    (_stage(blocks=[0]), 1, _stage(position="stage_end")),
    (_stage(position="stage_end", blocks=[0, 2]), 4, _stage(position="stage_end")),  # stage_end takes none
    (_stage(blocks=[0, 2]), 4, _stage(blocks=(0, 2))),                                # a real subset stays
    (_stage(blocks=[0, 2]), None, _stage(blocks=(0, 2))),                             # depth unknown: as written
    (_stage(then={"attn": "none"}), 2, _stage()),                                     # an empty stack is no stack
    (_stage(blocks=[1], then={"attn": "spatial"}), 2, _stage(position="stage_end", then={"attn": "spatial"})),
])
def test_canonical_form_of_indices_and_stacks(spec: StageConfig, depth: int | None, expected: StageConfig) -> None:
    assert spec.canonical(depth=depth) == expected
    assert StageConfig.from_dict(spec.to_dict()) == spec


def test_spellings_of_indices_and_stack_order() -> None:
    assert _stage(blocks=[2, 0, 2]) == _stage(blocks=(0, 2)) == _stage(blocks="0,2")  # sorted, distinct
    assert _stage(then={"attn": "spatial"}) != StageConfig("spatial", then={"attn": "se", "reduction": 8})
    stack = _stage(position="in_block", blocks=[0, 2], then={"attn": "spatial", "kernel_size": 7})
    assert str(stack) == "se/r8>spatial/k7@in_block@[0,2]"
    assert stack.params() == {"attn": "se", "reduction": "8", "position": "in_block", "blocks": "0,2",
                              "then": "spatial", "then.kernel_size": "7"}
    assert stack.to_dict()["blocks"] == [0, 2] and stack.to_dict()["then"] == {"attn": "spatial", "kernel_size": 7}


def test_existing_architectures_keep_their_json_and_params() -> None:
    """Defaults write nothing new: the JSON and MLflow params of an architecture without the new knobs are pinned."""
    raw = {"backbone": "resnet18", "in_chans": 3, "num_classes": 10, "small_input": True, "head": "avg",
           "stages": [{"attn": "none"}, {"attn": "se", "reduction": 8},
                      {"attn": "eca", "kernel_size": 5, "position": "in_block", "blocks": "last"},
                      {"attn": "cbam", "reduction": 16, "kernel_size": 7, "position": "stage_end"}]}
    arch = ArchConfig.from_dict(raw)
    assert arch.to_json() == (
        '{"backbone": "resnet18", "head": "avg", "in_chans": 3, "num_classes": 10, "small_input": true, "stages": '
        '[{"attn": "none"}, {"attn": "se", "blocks": "every", "position": "after_block", "reduction": 8}, '
        '{"attn": "eca", "blocks": "last", "kernel_size": 5, "position": "in_block"}, {"attn": "cbam", "blocks": '
        '"every", "kernel_size": 7, "position": "stage_end", "reduction": 16}]}')
    assert arch.params() == {
        "head": "avg", "s0.attn": "none", "s1.attn": "se", "s1.reduction": "8", "s1.position": "after_block",
        "s1.blocks": "every", "s2.attn": "eca", "s2.kernel_size": "5", "s2.position": "in_block", "s2.blocks": "last",
        "s3.attn": "cbam", "s3.reduction": "16", "s3.kernel_size": "7", "s3.position": "stage_end",
        "s3.blocks": "every"}


@pytest.mark.parametrize("stage,needle", [
    ({"attn": "se", "blocks": []}, "non-empty list of block indices"),
    ({"attn": "se", "blocks": [-1]}, "non-empty list of block indices"),
    ({"attn": "se", "blocks": [True]}, "non-empty list of block indices"),
    ({"attn": "se", "blocks": "first"}, "unknown blocks 'first'; valid: every, last or a list of block indices"),
    ({"attn": "se", "blocks": [0, 5]}, "stage 1 (layer2) of resnet18: blocks 0,5 names block 5, but the stage has 2 "
                                       "blocks (0..1)"),
    ({"attn": "none", "then": {"attn": "spatial"}}, "then='spatial' needs a first module"),
    ({"attn": "se", "then": {"attn": "sparkle"}}, "unknown attention type 'sparkle'"),
    ({"attn": "se", "then": {"attn": "eca", "reduction": 4}}, "attention 'eca' does not take knob 'reduction'"),
    ({"attn": "se", "then": "spatial"}, "must be a dict with an 'attn' key"),
    ({"attn": "se", "then": {"attn": "se", "then": {"attn": "se"}}}, "then: unknown key(s) ['then']"),  # depth <= 2
])
def test_bad_indices_and_stacks_give_one_line(stage: dict, needle: str) -> None:
    arch = {"backbone": "resnet18", "in_chans": 1, "num_classes": 10,
            "stages": [{"attn": "none"}, stage, {"attn": "none"}, {"attn": "none"}]}
    with pytest.raises(ValueError) as info:
        build(arch)
    assert needle in str(info.value) and "\n" not in str(info.value)
