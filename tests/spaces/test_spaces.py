"""Contracts over every shipped space, the conditional sampler and the space validation errors."""

from __future__ import annotations

import copy
import re

import optuna
import pytest
import yaml

from backbones import ATTENTION, build, stage_depths
from spaces import SpaceError, available_spaces, check_space_fits, load_space
from spaces.loader import SPACES_DIR
from spaces.schema import parse_space

SPACES = available_spaces()


def test_the_issue_spaces_ship() -> None:
    assert {"fashion_attention", "cifar_attention"} <= set(SPACES)


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("hardware", ["cpu", "gpu"])
def test_every_space_fits_its_backbones(name: str, hardware: str) -> None:
    space = load_space(name)
    budget = space.budgets[hardware]
    in_chans = 1 if space.dataset == "fashion_mnist" else 3
    channels = check_space_fits(space, backbone=budget.backbone, in_chans=in_chans,
                                backbone_kwargs=budget.backbone_kwargs)
    assert len(channels) == space.num_stages


@pytest.mark.parametrize("name", SPACES)
def test_sampling_is_conditional_and_builds(name: str) -> None:
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_types = set()
    budget = space.budgets["cpu"]
    base = space.base_arch(backbone=budget.backbone, in_chans=1, num_classes=10,
                           backbone_kwargs=budget.backbone_kwargs)
    for i in range(40):
        trial = study.ask()
        arch = space.sample(trial, base=base)
        params = trial.params
        assert space.params_of(arch) == params  # a drawn architecture can be enqueued under the same params
        if space.task == "classify" and not any(stage.then or stage.per_block for stage in space.stages):  # names of the spaces before issue 37
            assert all(re.fullmatch(r"head|s\d+\.(attn|reduction|kernel_size|position|blocks)", k) for k in params)
        drawn = {k: str(v) for k, v in params.items()  # all but the per-block knobs and a drawn "no second module"
                 if not re.fullmatch(r"s\d+\.b\d+", k) and not (k.endswith(".then") and v == "none")}
        assert drawn == {  # everything drawn is recorded, under ArchConfig.params names
            k: v for k, v in arch.params().items()
            if (not k.endswith(".blocks") or k in params) and k != "task"}  # the task is the space's, not drawn
        for stage in space.stages:
            kind = params[f"s{stage.index}.attn"]
            assert arch.stages[stage.index].attn == kind
            seen_types.add(kind)
            for knob in ("reduction", "kernel_size"):
                drawn = f"s{stage.index}.{knob}" in params
                assert drawn == (knob in ATTENTION[kind].knobs), (kind, knob, params)
            drawn_blocks = f"s{stage.index}.blocks" in params or f"s{stage.index}.b0" in params
            takes = kind != "none" and params[f"s{stage.index}.position"] != "stage_end"
            depth = stage_depths(backbone=budget.backbone, backbone_kwargs=budget.backbone_kwargs)[stage.index]
            assert drawn_blocks == (takes and (depth > 1 or not stage.per_block)), params
            assert (f"s{stage.index}.then" in params) == (kind != "none" and bool(stage.then)), params
        assert params["head"] in space.head and arch.head == params["head"]
        assert arch.backbone == budget.backbone and len(arch.stages) == space.num_stages
        study.tell(trial, 0.0)
        if i < 3:  # building is the slow part; a few are enough to prove the ArchConfig is valid
            build(arch)
    assert "none" in seen_types and len(seen_types) >= 4


def test_unknown_space_lists_the_available_ones() -> None:
    with pytest.raises(SpaceError, match=r"unknown space 'nope'; available spaces: .*fashion_attention"):
        load_space("nope")


def _raw() -> dict:
    return yaml.safe_load((SPACES_DIR / "fashion_attention.yaml").read_text())


def _mutated(path: list, value) -> dict:
    raw = copy.deepcopy(_raw())
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["defaults", "types"], ["se", "sparkle"], r"unknown attention type 'sparkle'; valid types: .*cbam.*se"),
        (["defaults", "kernel_size"], [3, 4], r"kernel_size=4 must be a positive odd integer"),
        (["defaults", "reduction"], [0, 8], r"reduction=0 must be >= 1"),
        (["defaults", "position"], ["everywhere"], r"unknown position 'everywhere'; valid: .*after_block"),
        (["defaults", "colour"], ["red"], r"unknown key 'colour'; valid keys: .*kernel_size"),
        (["stages", 7], {}, r"stage 7 does not exist; valid stages: 0..3"),
        (["budgets", "cpu", "epochs"], -1, r"epochs=-1 must be a positive integer"),
        (["budgets", "cpu", "speed"], 3, r"unknown key 'speed'"),
        (["flavour"], "x", r"unknown key 'flavour'"),
        (["head"], ["avg", "transformer"], r"unknown head 'transformer'; valid: avg, attn_pool"),
        (["defaults", "blocks"], ["first"], r"stage 0: unknown blocks 'first'; valid: every, last"),
        (["defaults", "blocks"], ["each", "last"], r"stage 0: blocks 'each' decides every block by its own knob; "
                                                   r"offer it alone, not with \['last'\]"),
        (["defaults", "blocks"], [[0, -1]], r"stage 0: blocks=\[0, -1\] must be one of every, last or a non-empty"),
        (["defaults", "then"], ["none", "sparkle"], r"stage 0: unknown attention type 'sparkle'"),
    ],
)
def test_bad_space_files_give_one_line(path: list, value, message: str) -> None:
    with pytest.raises(SpaceError, match=message) as info:
        parse_space(_mutated(path, value), name="bad")
    assert "\n" not in str(info.value)


def test_ratio_larger_than_channels_is_rejected_before_training() -> None:
    space = parse_space(_mutated(["defaults", "reduction"], [4, 128]), name="wide")
    with pytest.raises(SpaceError, match=r"stage 0 has 64 channels, so reduction ratio 128 leaves none"):
        check_space_fits(space, backbone="resnet10t", in_chans=1)


def test_block_index_a_stage_lacks_is_rejected_before_training() -> None:
    space = parse_space(_mutated(["defaults", "blocks"], ["every", [0, 1]]), name="two_blocks")
    assert space.stages[0].blocks == ("every", "0,1")  # offered as Optuna choices
    with pytest.raises(SpaceError, match=r"stage 0 of resnet10t: blocks 0,1 names block 1, but the stage has 1 "
                                         r"block \(0..0\)"):
        check_space_fits(space, backbone="resnet10t", in_chans=1)


def test_position_a_stage_lacks_is_rejected_before_training() -> None:
    raw = yaml.safe_load((SPACES_DIR / "mobile_attention.yaml").read_text())
    raw["stages"][3]["position"] = ["after_block", "in_block"]
    space = parse_space(raw, name="mobile_in_block_everywhere")
    with pytest.raises(SpaceError, match=r"stage 3 of mobilenetv3_small_100 does not support position 'in_block'; "
                                         r"valid positions here: after_block, stage_end"):
        check_space_fits(space, backbone="mobilenetv3_small_100", in_chans=1)


def test_budget_overrides_are_checked() -> None:
    budget = load_space("fashion_attention").budgets["cpu"]
    assert budget.with_overrides({"epochs": 1, "lr": None}).epochs == 1
    with pytest.raises(SpaceError, match=r"unknown budget key 'epoch'"):
        budget.with_overrides({"epoch": 1})
    with pytest.raises(SpaceError, match=r"epochs=0 must be a positive integer"):
        budget.with_overrides({"epochs": 0})
