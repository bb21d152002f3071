"""A segment space (task: segment): decoder blocks and skips drawn under ArchConfig.params names, canonical forms,
controls as architectures, and the bad inputs of its decoder/skips/controls keys."""

from __future__ import annotations

import copy

import optuna
import pytest
import yaml

from backbones import ArchConfig, DecoderBlock, canonical, decoder_knobs
from spaces import SpaceError, load_space
from spaces.loader import SPACES_DIR
from spaces.schema import parse_space

SEG = "fashion_seg_attention"


def _base():
    space = load_space(SEG)
    budget = space.budgets["cpu"]
    return space, space.base_arch(backbone=budget.backbone, in_chans=1, num_classes=11,
                                  backbone_kwargs=budget.backbone_kwargs)


def test_decoder_blocks_and_skips_are_drawn_conditionally_under_arch_param_names() -> None:
    space, base = _base()
    assert base.task == "segment" and len(base.decoder) == 4 and len(base.skips) == 3 and base.is_plain
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen, skips = set(), set()
    for _ in range(30):
        trial = study.ask()
        arch = space.sample(trial, base=base)
        params = trial.params
        assert {k: str(v) for k, v in params.items()} == {
            k: v for k, v in arch.params().items() if (not k.endswith(".blocks") or k in params) and k != "task"}
        for j, block in enumerate(arch.decoder):
            assert params[f"d{j}.attn"] == block.attn
            for knob in ("reduction", "kernel_size"):  # a knob is drawn only for a type that takes it
                assert (f"d{j}.{knob}" in params) == (knob in decoder_knobs(block.attn)), params
            seen.add(block.attn)
        assert [params[f"k{i}"] for i in range(3)] == list(arch.skips)
        skips |= set(arch.skips)
        assert ArchConfig.from_dict(arch.to_dict()) == arch
        study.tell(trial, 0.0)
    assert {"none", "scse"} <= seen and skips == {"none", "gate"}


def test_a_sampled_arch_is_canonical_and_its_params_round_trip() -> None:
    space, base = _base()
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    arch = space.sample(trial, base=base)
    again = canonical(arch)
    assert canonical(again) == again and again.decoder == tuple(b.canonical() for b in arch.decoder)
    assert again.skips == arch.skips
    assert space.params_of(arch) == trial.params


def test_segment_controls_are_plain_unet_encoder_se_cbam_and_gated_skips() -> None:
    space, base = _base()
    controls = space.control_archs(base=base)
    assert list(controls) == ["plain", "enc_se_r16", "enc_cbam_r16_k7", "gated_skips"]
    assert controls["plain"].is_plain
    assert {s.attn for s in controls["enc_se_r16"].stages} == {"se"} and controls["enc_se_r16"].skips == ("none",) * 3
    assert {s.attn for s in controls["enc_cbam_r16_k7"].stages} == {"cbam"}
    gated = controls["gated_skips"]
    assert gated.skips == ("gate",) * 3 and all(s.is_none for s in gated.stages)
    assert all(b == DecoderBlock() for b in gated.decoder)
    for arch in controls.values():  # every control is in the space: the study enqueues it with these params
        assert space.params_of(arch) is not None


def _raw() -> dict:
    return yaml.safe_load((SPACES_DIR / f"{SEG}.yaml").read_text())


def _with(**changes) -> dict:
    raw = copy.deepcopy(_raw())
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(("raw", "message"), [
    (_with(decoder={"types": ["none", "sxse"]}), r"decoder: unknown decoder attention type 'sxse'; valid: .*scse"),
    (_with(decoder={"types": ["none"], "ratio": [4]}), r"decoder: unknown key 'ratio'; valid keys: kernel_size, "),
    (_with(decoder={"types": ["se"]}), r"decoder: 'reduction' needs a list of choices"),
    (_with(decoder={"types": ["scse"], "reduction": [0]}), r"decoder: .*reduction=0"),
    (_with(decoder=None), r"task 'segment' needs 'decoder'"),
    (_with(skips=["none", "gated"]), r"skips: unknown skip 'gated'; valid: none, gate"),
    (_with(task="detect"), r"unknown task 'detect'; valid: classify, segment"),
    (_with(head=["avg", "attn_pool"]), r"task 'segment' has no classifier head; head must be \[avg\]"),
    (_with(controls={"gates": {"skips": "gated"}}), r"controls: gates: unknown skip 'gated'; valid: none, gate"),
    (_with(task="classify"), r"'decoder' is for a task with a decoder \(task: segment\)"),
])
def test_bad_segment_space_is_one_line(raw: dict, message: str) -> None:
    with pytest.raises(SpaceError, match=message) as caught:
        parse_space(raw, name="bad")
    assert "\n" not in str(caught.value)


def test_a_classify_space_refuses_a_skip_control() -> None:
    raw = yaml.safe_load((SPACES_DIR / "fashion_attention.yaml").read_text())
    raw["controls"] = {"gated": {"skips": "gate"}}
    with pytest.raises(SpaceError, match=r"controls: gated: 'decoder' and 'skips' are for a task with a decoder"):
        parse_space(raw, name="bad")
