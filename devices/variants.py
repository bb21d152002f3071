"""What a latency table prices: the plain backbone per head, and each distinct attention module by its input shape.

An attention module maps ``(N, C, H, W) -> (N, C, H, W)``, so on one backbone its cost depends on its type, its
knobs and the shape it sees: where the module sits (stage, ``position``, ``blocks``) decides how many copies run and
at which shapes, not what one copy computes. A space's architectures therefore share few distinct modules: on
``fashion_attention``'s CPU budget, 31 (type, knobs) pairs at 4 shapes, 124 in all, against about 3 x 10^7
distinct architectures (63 canonical choices per stage, to the fourth, times 2 heads).
This is nn-Meter's idea (Zhang et al., MobiSys 2021, https://doi.org/10.1145/3458864.3467882: latency per kernel,
summed) on the coarser grain our space is made of.

Keys are strings: a module is ``StageConfig``'s short form at a shape, ``se/r8@64x14x14`` (channels x height x width
of its input); a backbone is ``backbone/avg`` (the plain base with that classifier head).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache

import torch

from backbones import ATTENTION, DEFAULT_HEAD, ArchConfig, StageConfig, build
from backbones.supernet import stage_candidates
from spaces import SearchSpace

Shape = tuple[int, int, int]  # (C, H, W) of one image, or of the feature map a module sees
# The type put at a slot to find it: ECA takes any channel count, has one knob with a default, and no backbone we
# support ships ECA of its own, so every EcaModule in the built model is one of ours.
_LOCATOR = "eca"


@dataclass(frozen=True)
class Module:
    """One attention module of an architecture: what it is and the shape it sees."""

    stage: int  # index in the backbone's feature_info order
    spec: StageConfig  # the stage's type, knobs and placement
    shape: Shape

    @property
    def key(self) -> str:
        return module_key(self.spec, self.shape)


def module_key(spec: StageConfig, shape: Shape) -> str:
    """``se/r8@64x14x14``: type and knobs as ``StageConfig`` writes them (placement dropped), then the input shape."""
    return f"{StageConfig(attn=spec.attn, **spec.knobs)}@{'x'.join(map(str, shape))}"


def backbone_key(head: str) -> str:
    """Key of the plain base with classifier head ``head`` (``backbones.HEADS``)."""
    return f"backbone/{head}"


def base_of(arch: ArchConfig) -> ArchConfig:
    """What a table is measured on: ``arch``'s backbone and sizes, no attention, the default head."""
    return dataclasses.replace(arch.plain(), head=DEFAULT_HEAD)


@lru_cache(maxsize=None)
def _slot_shapes(base_json: str, stage: int, position: str, blocks: str, image: Shape) -> tuple[Shape, ...]:
    base = ArchConfig.from_dict(json.loads(base_json))
    stages = list(base.stages)
    stages[stage] = StageConfig(attn=_LOCATOR, position=position, blocks=blocks)
    with torch.random.fork_rng(devices=[]):  # building must not shift the caller's RNG
        model = build(dataclasses.replace(base, stages=tuple(stages))).eval()
    locator = ATTENTION[_LOCATOR].call(1).cls
    shapes: list[Shape] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape[1:])))
             for m in model.modules() if isinstance(m, locator)]
    with torch.no_grad():
        model(torch.zeros(1, *image))
    for hook in hooks:
        hook.remove()
    return tuple(shapes)


def slot_shapes(base: ArchConfig, *, stage: int, position: str, blocks: str, image: Shape) -> tuple[Shape, ...]:
    """Input shape of every module a stage gets at ``position`` / ``blocks``, in forward order (one per block for
    ``every``); measured by one forward pass of ``image``-sized zeros through ``base`` with a module there (cached)."""
    return _slot_shapes(base.to_json(), stage, position, blocks, tuple(image))


def modules_of(arch: ArchConfig, *, image: Shape) -> list[Module]:
    """Every attention module ``arch`` has, stage by stage, each with the shape it sees at input ``image``."""
    base = base_of(arch)
    return [Module(stage=i, spec=spec, shape=shape) for i, spec in enumerate(arch.stages) if not spec.is_none
            for shape in slot_shapes(base, stage=i, position=spec.position, blocks=spec.blocks, image=image)]


def space_modules(space: SearchSpace, *, base: ArchConfig, image: Shape) -> dict[str, Module]:
    """Every distinct module (by key) an architecture of ``space`` (a ``spaces.SearchSpace``) on ``base`` can
    have, and every module of its controls (which every search trains beside the space's own), in a fixed order: the
    table a space needs."""
    found: dict[str, Module] = {}
    for stage in space.stages:
        for spec in stage_candidates(stage):
            if spec.is_none:
                continue
            for shape in slot_shapes(base, stage=stage.index, position=spec.position, blocks=spec.blocks, image=image):
                found.setdefault(module_key(spec, shape), Module(stage=stage.index, spec=spec, shape=shape))
    for control in space.control_archs(base=base).values():
        for module in modules_of(control, image=image):
            found.setdefault(module.key, module)
    return found

