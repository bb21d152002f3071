"""Contract for the weight-sharing supernet (backbones.supernet): it builds for every tested backbone family,
uniform path sampling reaches every choice of every stage, and a path scored in the supernet equals the standalone
``build(arch)`` loaded with the weights it inherits, bit for bit in eval mode."""
from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from backbones import stage_channels, stage_positions
from backbones.supernet import Choice, Supernet, module_key, stage_candidates
from spaces import StageSpace, load_space

FAMILIES = {"resnet10t": {"channels": [32, 64, 128, 256], "stem_width": 16}, "mobilenetv3_small_100": {},
            "efficientnet_b0": {}, "regnety_002": {}, "convnext_atto": {}}


def _space(backbone: str):
    """A small space on ``backbone``: none / SE r4 / ECA k3 at every stage, every position the stage supports,
    both heads."""
    base_space = load_space("your_data")
    positions = stage_positions(backbone=backbone, backbone_kwargs=FAMILIES[backbone])
    stages = tuple(StageSpace(index=i, types=("none", "se", "eca"), reduction=(4,), kernel_size=(3,),
                              position=tuple(p for p in ("after_block", "in_block", "stage_end") if p in supported),
                              blocks=("every", "last")) for i, supported in enumerate(positions))
    space = dataclasses.replace(base_space, stages=stages, num_stages=len(stages), head=("avg", "attn_pool"))
    base = space.base_arch(backbone=backbone, in_chans=3, num_classes=10, backbone_kwargs=FAMILIES[backbone])
    return space, base


@pytest.mark.parametrize("backbone", list(FAMILIES))
def test_paths_equal_their_standalone_models(backbone: str) -> None:
    space, base = _space(backbone)
    torch.manual_seed(0)
    supernet = Supernet(space=space, base=base, seed=1)
    assert len(stage_channels(backbone=backbone, backbone_kwargs=FAMILIES[backbone])) == len(space.stages)
    supernet.train()
    for _ in range(3):  # training steps move the BatchNorm statistics of whatever paths they sample
        supernet(torch.randn(4, 3, 32, 32))
    supernet.eval()
    x = torch.randn(2, 3, 32, 32)
    rng = random.Random(0)
    for arch in [supernet.sample() for _ in range(6)] + [base.plain(), _every(space, base, rng)]:
        supernet.activate(arch)
        with torch.no_grad():
            expected = supernet(x)
            got = supernet.extract(arch).eval()(x)
        assert torch.equal(expected, got), (backbone, str(arch))


def _stack_space(backbone: str, kwargs: dict):
    """SE r4 / none at every stage, each block by its own knob, a second module (none / spatial k3 / ECA k3)."""
    space, _ = _space("resnet10t")
    positions = stage_positions(backbone=backbone, backbone_kwargs=kwargs)
    stages = tuple(StageSpace(index=i, types=("none", "se"), reduction=(4,), kernel_size=(3,), then=("none", "spatial",
                                                                                                     "eca"),
                              position=tuple(p for p in ("after_block", "in_block", "stage_end") if p in supported),
                              blocks=("each",)) for i, supported in enumerate(positions))
    space = dataclasses.replace(space, stages=stages, num_stages=len(stages))
    return space, space.base_arch(backbone=backbone, in_chans=3, num_classes=10, backbone_kwargs=kwargs)


@pytest.mark.parametrize("backbone,kwargs", [("resnet18", {"channels": [16, 32, 64, 128]}), ("mobilenetv2_050", {})])
def test_block_sets_and_stacks_are_paths(backbone: str, kwargs: dict) -> None:
    """Per-block sets and stacks are supernet paths: each equals its standalone model, and sampling reaches every
    candidate of a two-block stage."""
    space, base = _stack_space(backbone, kwargs)
    torch.manual_seed(0)
    supernet = Supernet(space=space, base=base, seed=1)
    supernet.train()
    supernet(torch.randn(2, 3, 32, 32))
    supernet.eval()
    x = torch.randn(2, 3, 32, 32)
    archs = [supernet.sample() for _ in range(4)]
    assert any(s.then is not None for a in archs for s in a.stages)
    assert any(isinstance(s.blocks, tuple) and len(s.blocks) < d for a in archs
               for s, d in zip(a.stages, supernet.depths))
    for arch in archs:
        supernet.activate(arch)
        with torch.no_grad():
            assert torch.equal(supernet(x), supernet.extract(arch).eval()(x)), str(arch)
    if backbone == "resnet18":  # two blocks per stage: every set, every stack drawn
        seen = {supernet.sample().stages[1] for _ in range(1500)}
        assert seen == set(stage_candidates(space.stages[1], depth=2))


def _every(space, base, rng: random.Random):
    """One architecture with attention at every stage (the last candidate of each: a stage_end or in_block one)."""
    stages = tuple(stage_candidates(s)[-1] for s in space.stages)
    return dataclasses.replace(base, stages=stages, head="attn_pool")


def test_sampling_reaches_every_choice() -> None:
    space, base = _space("resnet10t")
    supernet = Supernet(space=space, base=base, seed=0)
    seen = {s.index: set() for s in space.stages}
    heads = set()
    for _ in range(3000):
        arch = supernet.sample()
        heads.add(arch.head)
        for stage in space.stages:
            seen[stage.index].add(arch.stages[stage.index])
    for stage in space.stages:
        assert seen[stage.index] == set(stage_candidates(stage)), stage.index
    assert heads == {"avg", "attn_pool"}


def test_a_path_outside_the_space_is_refused() -> None:
    space, base = _space("resnet10t")
    supernet = Supernet(space=space, base=base)
    bad = dataclasses.replace(base, stages=(dataclasses.replace(base.stages[0], attn="cbam", reduction=16,
                                                                kernel_size=7),) + base.stages[1:])
    with pytest.raises(ValueError, match="stage 0: cbam/r16/k7 is not in the space"):
        supernet.activate(bad)


def test_choices_hold_one_module_per_type_and_knobs() -> None:
    space, base = _space("resnet10t")
    supernet = Supernet(space=space, base=base)
    choices = [m for m in supernet.modules() if isinstance(m, Choice) and len(m.choices) and "se_r4" in m.choices]
    assert choices and all(set(c.choices) == {"se_r4", "eca_k3"} for c in choices)
    assert module_key(stage_candidates(space.stages[0])[1]) in {"se_r4", "eca_k3"}


def test_interrupted_supernet_training_resumes_bit_for_bit() -> None:
    """train_epochs' checkpoint/resume plus the supernet's path generator: stopping after epoch 2 of 3 and resuming
    ends with exactly the weights of an uninterrupted training (CPU)."""
    import copy

    from trials import TrainConfig, load_dataset
    from trials.train import train_epochs

    space, base = _space("resnet10t")
    base = dataclasses.replace(base, in_chans=1)
    data = load_dataset("fashion_mnist", train_size=192, val_size=64, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=64, seed=0, ema=0.9)

    def fresh() -> Supernet:
        torch.manual_seed(0)
        return Supernet(space=space, base=base, seed=0)

    whole = fresh()
    for _ in train_epochs(whole, data, cfg, device="cpu"):
        pass
    saved: dict = {}
    stopped = fresh()
    for metrics in train_epochs(stopped, data, cfg, device="cpu", checkpoint=lambda state: saved.update(
            state=copy.deepcopy(state), paths=stopped.path_state())):
        if metrics["epoch"] == 2:
            break  # the interruption: epoch 2's state was checkpointed
    resumed = fresh()
    resumed.set_path_state(saved["paths"])
    epochs = [m["epoch"] for m in train_epochs(resumed, data, cfg, device="cpu", resume=saved["state"])]
    assert epochs == [3]
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
