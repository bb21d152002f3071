"""Contract: segmentation ArchConfigs (``task: segment``) build a U-Net for every decoder attention type, every skip
mode at every skip and every tested backbone family; forward gives (N, classes, H, W); one train step reaches every
new module; JSON, canonical form, de-duplication and the standalone export hold; the supernet refuses clearly."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from backbones import (ATTENTION, SCSE, SKIPS, SUPPORTED_BACKBONES, ArchConfig, DecoderBlock, StageConfig, build,
                       canonical, decoder_attention_types, stage_positions)
from backbones.gate import AttentionGate
from backbones.standalone import standalone_source
from backbones.unet import decoder_widths

SMALL = {"backbone": "resnet10t", "backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8},
         "in_chans": 1, "num_classes": 5, "small_input": True}
PLAIN_SEG = {**SMALL, "task": "segment", "stages": [{"attn": "none"}] * 4, "decoder": [{"attn": "none"}] * 4,
             "skips": ["none"] * 3}


def _decoder_spec(name: str) -> dict:
    knobs = ATTENTION[name].knobs if name in ATTENTION else {"reduction"}
    return {"attn": name, **{k: v for k, v in {"reduction": 4, "kernel_size": 3}.items() if k in knobs}}


def _rebuilt(arch: ArchConfig | dict) -> torch.nn.Module:
    text = standalone_source(arch, docstring="test", weights="absent.safetensors")
    assert not re.search(r"^\s*(from|import)\s+(backbones|trials|search|spaces|dashboards)\b", text, re.M), text
    namespace = {"__file__": "/nonexistent/model.py", "__name__": "exported"}
    exec(compile(text, "exported.py", "exec"), namespace)  # noqa: S102 - the generated module under test
    return namespace["build_model"](pretrained=False)


def _assert_contract(arch: dict, *, size: int = 32, export: bool = True) -> torch.nn.Module:
    """Builds; (N, classes, H, W) out; the standalone export has the same state dict and the same outputs."""
    torch.manual_seed(0)
    model = build(arch).eval()
    x = torch.randn(2, arch["in_chans"], size, size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, arch["num_classes"], size, size)
    if export:
        rebuilt = _rebuilt(arch)
        assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == \
               [(k, v.shape) for k, v in model.state_dict().items()]
        rebuilt.load_state_dict(model.state_dict())
        with torch.no_grad():
            assert torch.equal(rebuilt(x), out)
    return model


@pytest.mark.parametrize("name", sorted(decoder_attention_types()))
def test_every_decoder_attention_type_in_every_block(name: str) -> None:
    spec = _decoder_spec(name)
    model = _assert_contract({**PLAIN_SEG, "decoder": [spec] * 4})
    if name != "none":  # every block holds it (scse: smp's two places; others: after the block)
        for step in model.decoder.blocks:
            assert any(p.requires_grad for p in step.parameters())
            held = step.block.attention2.attention if name == SCSE else step.attn
            assert not isinstance(held, torch.nn.Identity)


@pytest.mark.parametrize("skip", range(3))
@pytest.mark.parametrize("mode", sorted(SKIPS))
def test_every_skip_mode_at_every_skip(mode: str, skip: int) -> None:
    skips = ["none"] * 3
    skips[skip] = mode
    model = _assert_contract({**PLAIN_SEG, "skips": skips})
    gates = [isinstance(step.gate, AttentionGate) for step in model.decoder.blocks]
    expected = [False] * 4
    if mode == "gate":
        expected[len(gates) - 2 - skip] = True  # block j merges stage S-2-j
    assert gates == expected


@pytest.mark.parametrize("backbone", SUPPORTED_BACKBONES)
def test_every_backbone_family(backbone: str) -> None:
    from backbones import stage_depths

    depths = stage_depths(backbone=backbone)
    positions = stage_positions(backbone=backbone)
    stages = [{"attn": "se", "reduction": 4, "position": "in_block" if "in_block" in p else "after_block"}
              for p in positions]
    count = len(depths)
    arch = {"backbone": backbone, "in_chans": 3, "num_classes": 4, "small_input": True, "task": "segment",
            "stages": stages, "decoder": [{"attn": "scse", "reduction": 4}] + [{"attn": "eca"}] * (count - 1),
            "skips": ["gate"] * (count - 1)}
    heavy = backbone in ("resnet50", "mobilenetv3_large_100", "efficientnet_b0")
    _assert_contract(arch, export=not heavy)


def test_encoder_attention_positions_and_plain_encoder_match_timm() -> None:
    """Encoder attention is placed exactly as for a classifier; a plain U-Net's encoder is timm's (pruned)."""
    arch = {**PLAIN_SEG, "stages": [{"attn": "cbam", "reduction": 4, "position": "in_block"},
                                    {"attn": "eca", "position": "stage_end"}, {"attn": "none"},
                                    {"attn": "se", "reduction": 4, "blocks": "last"}]}
    model = _assert_contract(arch)
    classifier = build({k: v for k, v in arch.items() if k not in ("task", "decoder", "skips")} | {"num_classes": 5})
    encoder_keys = {k[len("encoder."):] for k in model.state_dict() if k.startswith("encoder.")}
    assert encoder_keys == {k for k in classifier.state_dict() if not k.startswith("fc.")}


def test_one_train_step_reaches_every_new_module() -> None:
    arch = {**PLAIN_SEG, "stages": [{"attn": "se", "reduction": 4}] + [{"attn": "none"}] * 3,
            "decoder": [{"attn": "scse", "reduction": 4}, {"attn": "cbam", "reduction": 4, "kernel_size": 3},
                        {"attn": "eca"}, {"attn": "scse", "reduction": 2}], "skips": ["gate"] * 3}
    torch.manual_seed(0)
    model = build(arch).train()
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 5, (4, 32, 32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    # the only parameter-free path: the last block has no skip, so scSE sits on its output only
    assert not missing, missing
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    changed = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(".gate." in k for k in changed) and any("attention1" in k for k in changed)


def test_json_round_trip_and_classification_json_unchanged() -> None:
    arch = ArchConfig.from_dict({**PLAIN_SEG, "decoder": [_decoder_spec("scse"), _decoder_spec("cbam"),
                                                          {"attn": "none"}, _decoder_spec("eca")],
                                 "skips": ["gate", "none", "gate"]})
    assert ArchConfig.from_dict(arch.to_dict()) == arch
    assert ArchConfig.from_dict(__import__("json").loads(arch.to_json())) == arch
    assert arch.to_dict()["decoder"][0] == {"attn": "scse", "reduction": 4}
    assert arch.params()["d0.attn"] == "scse" and arch.params()["k0"] == "gate" and arch.params()["task"] == "segment"
    assert str(arch).endswith("|| dec scse/r4 | cbam/r4/k3 | - | eca/k3 || skips g - g")
    classify = ArchConfig.from_dict({**SMALL, "stages": [{"attn": "se", "reduction": 8}] + [{"attn": "none"}] * 3})
    assert classify.to_json() == (
        '{"backbone": "resnet10t", "backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 8}, '
        '"head": "avg", "in_chans": 1, "num_classes": 5, "small_input": true, "stages": [{"attn": "se", "blocks": '
        '"every", "position": "after_block", "reduction": 8}, {"attn": "none"}, {"attn": "none"}, {"attn": "none"}]}')
    assert set(classify.params()) == {"head", "s0.attn", "s0.reduction", "s0.position", "s0.blocks",
                                      "s1.attn", "s2.attn", "s3.attn"}


def test_canonical_form_and_deduplication() -> None:
    a = ArchConfig.from_dict({**PLAIN_SEG, "stages": [{"attn": "se", "reduction": 4, "blocks": "last"}]
                              + [{"attn": "none"}] * 3, "skips": ["gate", "none", "none"]})
    b = ArchConfig.from_dict({**PLAIN_SEG, "stages": [{"attn": "se", "reduction": 4, "position": "stage_end"}]
                              + [{"attn": "none"}] * 3, "skips": ["gate", "none", "none"]})
    assert a != b and canonical(a) == canonical(b) and hash(canonical(a)) == hash(canonical(b))
    torch.manual_seed(0)
    ma = build(canonical(a)).eval()
    torch.manual_seed(0)
    mb = build(b).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(ma(x), mb(x))
    other_skip = dataclasses.replace(b, skips=("none", "gate", "none"))
    other_decoder = dataclasses.replace(b, decoder=(DecoderBlock("scse"),) + b.decoder[1:])
    assert len({canonical(x) for x in (a, b, other_skip, other_decoder)}) == 3
    assert canonical(a).canonical(depths=[1] * 4) == canonical(a)  # idempotent
    plain = a.plain()
    assert plain.is_plain and plain.task == "segment" and all(s == "none" for s in plain.skips)
    assert not a.is_plain and not other_decoder.is_plain


@pytest.mark.parametrize("change, message", [
    ({"decoder": [{"attn": "none"}] * 3}, "needs 4 decoder blocks and 3 skips"),
    ({"skips": ["none"] * 4}, "needs 4 decoder blocks and 3 skips"),
    ({"skips": ["none", "gates", "none"]}, "unknown skip 'gates'; valid: none, gate"),
    ({"decoder": [{"attn": "scsee"}] * 4}, "decoder block 0: unknown decoder attention type 'scsee'"),
    ({"decoder": [{"attn": "scse", "kernel_size": 3}] * 4}, "does not take knob 'kernel_size'"),
    ({"decoder": [{"attn": "se", "position": "in_block"}] * 4}, "unknown key(s) ['position']"),
    ({"head": "attn_pool"}, "has no classifier head"),
    ({"task": "detect"}, "unknown task 'detect'; valid tasks: classify, segment"),
    ({"task": "classify"}, "task='classify' with 4 stages needs 0 decoder blocks and 0 skips"),
    ({"skips": "gate"}, "skips='gate' must be a list of str"),
])
def test_bad_segmentation_archs_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        ArchConfig.from_dict({**PLAIN_SEG, **change})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_knobs_too_large_for_the_decoder_widths_fail_at_build() -> None:
    with pytest.raises(ValueError, match=r"decoder block 3: attention 'scse': reduction=32 invalid for 16 channels"):
        build({**PLAIN_SEG, "decoder": [{"attn": "none"}] * 3 + [{"attn": "scse", "reduction": 32}]})
    # decoder blocks and skips follow the stages (ArchConfig), and the stages the backbone (build)
    with pytest.raises(ValueError, match="'efficientnet_lite0' has 5 stages .*ArchConfig gives 4 stage dicts"):
        build({**PLAIN_SEG, "backbone_kwargs": {}, "backbone": "efficientnet_lite0"})


def test_decoder_widths_mirror_the_encoder() -> None:
    assert decoder_widths([32, 64, 128, 256]) == [128, 64, 32, 32]


def test_supernet_says_it_does_not_cover_segmentation() -> None:
    from backbones.supernet import Supernet

    with pytest.raises(ValueError, match="the supernet covers classification only; task 'segment'"):
        Supernet(space=None, base=ArchConfig.from_dict(PLAIN_SEG))


def test_stage_config_is_the_classifiers() -> None:
    arch = ArchConfig.from_dict(PLAIN_SEG)
    assert arch.stages == (StageConfig(),) * 4 and arch.decoder == (DecoderBlock(),) * 4
