"""Contract: ``backbones.standalone.standalone_source`` rebuilds exactly what ``build`` builds, for every attention
type, every position, every head and every tested backbone family, without importing this package."""
from __future__ import annotations

import re

import pytest
import torch

from backbones import ATTENTION, HEADS, POSITIONS, build
from backbones.standalone import standalone_source

SMALL = {"backbone": "resnet10t", "backbone_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 16},
         "in_chans": 1, "num_classes": 10, "small_input": True}
FAMILIES = ["resnet50", "mobilenetv3_small_100", "efficientnet_b0", "regnety_002", "convnext_atto"]


def _spec(name: str, position: str) -> dict:
    spec = {"attn": name, "position": position}
    spec.update({k: v for k, v in {"reduction": 4, "kernel_size": 5}.items() if k in ATTENTION[name].knobs})
    return spec


def _rebuilt(arch: dict) -> torch.nn.Module:
    text = standalone_source(arch, docstring="test", weights="absent.safetensors")
    assert not re.search(r"^\s*(from|import)\s+(backbones|trials|search|spaces|dashboards)\b", text, re.M), text
    namespace = {"__file__": "/nonexistent/model.py", "__name__": "exported"}
    exec(compile(text, "exported.py", "exec"), namespace)  # noqa: S102 - the generated module under test
    return namespace["build_model"](pretrained=False)


def _assert_same(arch: dict, size: int = 28) -> None:
    torch.manual_seed(0)
    original = build(arch).eval()
    rebuilt = _rebuilt(arch)
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == \
           [(k, v.shape) for k, v in original.state_dict().items()]
    rebuilt.load_state_dict(original.state_dict())
    x = torch.randn(2, arch["in_chans"], size, size)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), original(x))


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_every_attention_type_is_rebuilt_exactly(name: str) -> None:
    positions = ["after_block", "in_block", "stage_end", "after_block"]
    _assert_same({**SMALL, "head": "attn_pool",
                  "stages": [_spec(name, p) for p in positions]})


@pytest.mark.parametrize("position", sorted(POSITIONS))
@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_position_and_head(position: str, head: str) -> None:
    _assert_same({**SMALL, "head": head, "stages": [_spec("se", position), {"attn": "none"},
                                                    {**_spec("cbam", position), "blocks": "last"}, {"attn": "none"}]})


@pytest.mark.parametrize("backbone", FAMILIES)
def test_every_backbone_family(backbone: str) -> None:
    from backbones import stage_positions

    stages = [_spec("eca", "in_block" if "in_block" in positions else "after_block")
              for positions in stage_positions(backbone=backbone)]
    _assert_same({"backbone": backbone, "in_chans": 3, "num_classes": 10, "small_input": True, "head": "attn_pool",
                  "stages": stages}, size=32)
