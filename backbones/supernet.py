"""A weight-sharing supernet over a search space: every candidate of every searched stage in one model.

Used by a one-shot pre-screen (issue 25): train the supernet once with one path sampled per step, then score each
architecture with the weights it inherits. This module builds the supernet and maps paths to standalone models;
training and scoring live above it.

**Structure.** On the timm backbone (small-input stem and all, as ``backbones.build`` makes it), each searched
stage gets a :class:`Choice` at every slot its candidates use: inside each block (``in_block``: the block's ``se``
slot, keeping the block's own SE module, if any, as the "none" choice), after each block (``after_block``: the block
becomes ``nn.Sequential(block, Choice)``) and at the end of the stage (``stage_end``); the head's global pool becomes
a Choice over the space's heads. A Choice holds one module per distinct (type, knobs) that may sit there, built for
the channels measured at that slot (the same two-phase placement as ``build``), and runs the active one. Every block
has its slots, so every ``blocks`` value (``every``, ``last``, explicit indices, ``each``) is a path. A stage that
offers a stack (``then``) holds ``nn.Sequential(Choice, Choice)`` at each slot: the first module's choices (shared
with the one-module paths, as SPOS shares a layer's candidates) and the second's (inactive: the identity).

**Paths.** :meth:`Supernet.activate` sets every Choice for one ``ArchConfig`` of the space; the supernet then
computes exactly what ``build(arch)`` with the same weights computes (:meth:`Supernet.extract` builds that
standalone model and copies the weights; tests check bit-exact equality in eval mode). In training mode with
``sampling`` on, every forward pass first activates a path drawn uniformly from the space (SPOS, Guo et al. 2020,
https://arxiv.org/abs/1904.00420: type uniform per stage, then each knob uniform; uniform rather than FairNAS's
strict fairness because the knobs are conditional on the type), so the ordinary training loop trains it.

Classification only: a base ArchConfig of another task (``task: segment``) is refused with a one-line ValueError.
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .arch import ArchConfig, StageConfig, Then
from .attention import ATTENTION, make_attention
from .build import build, _create  # noqa: PLC2701 - the same timm model build() starts from
from .head import HEADS
from .placement import block_indices, check_blocks, dry_run, install, takes_blocks
from .task import MODEL_TASKS

_SIZE = 32  # px of the dry run that measures each slot's channels (as build's)


def module_key(spec: StageConfig | Then) -> str:
    """The key of a (type, knobs) module inside a Choice, e.g. ``se_r16``, ``cbam_r4_k3`` (a stack's first module:
    its StageConfig; its second: the ``then``)."""
    return "_".join([spec.attn] + [f"{name[0]}{value}" for name, value in spec.knobs.items()])


class Choice(nn.Module):
    """One slot of the supernet: ``choices[key]`` when ``active`` is a key, else ``original`` (the module the slot
    held in the timm model, e.g. a block's own SE) or the identity."""

    def __init__(self, choices: Mapping[str, nn.Module], original: nn.Module | None = None) -> None:
        super().__init__()
        self.choices = nn.ModuleDict(dict(choices))
        self.original = original
        self.active: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active is not None:
            return self.choices[self.active](x)
        return self.original(x) if self.original is not None else x


def _modules(stage: Any, types: Sequence[str]) -> list[Then]:
    """Every (type, knobs) of ``types`` (none left out) with the stage's knob values, in a fixed order."""
    found = []
    for kind in types:
        knobs = sorted(ATTENTION[kind].knobs)
        found += [Then(kind, **dict(zip(knobs, values))) for values in itertools.product(
            *(getattr(stage, k) for k in knobs))] if kind != "none" else []
    return found


def stage_candidates(stage: Any, *, depth: int = 1) -> list[StageConfig]:
    """Every StageConfig a ``spaces.StageSpace`` offers (none included) on a stage of ``depth`` blocks (what
    ``blocks: each`` enumerates), in a fixed order. The product can be large: the supernet asks :func:`offers`."""
    found = [StageConfig()]
    thens = [None] * (not stage.then or "none" in stage.then) + _modules(stage, stage.then)
    for first in _modules(stage, stage.types):
        for position in stage.position:
            for blocks in (stage.block_choices(depth=depth) if takes_blocks(position) else ("every",)):
                found += [StageConfig(attn=first.attn, position=position, blocks=blocks, then=then, **first.knobs)
                          for then in thens]
    return found


def offers(stage: Any, spec: StageConfig, *, depth: int) -> bool:
    """Whether ``spec`` is one of :func:`stage_candidates` ``(stage, depth=depth)`` (without listing them)."""
    if spec.is_none:
        return True
    first = Then(spec.attn, **spec.knobs)
    if first not in _modules(stage, stage.types) or spec.position not in stage.position:
        return False
    if takes_blocks(spec.position) and spec.blocks not in stage.block_choices(depth=depth):
        return False
    if spec.then is None:
        return not stage.then or "none" in stage.then
    return spec.then in _modules(stage, stage.then)


class _Uniform:
    """A ``space.sample`` suggester drawing every categorical uniformly from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


class Supernet(nn.Module):
    """Every architecture of ``space`` on ``base`` (its backbone, sizes and head) in one weight-shared model."""

    def __init__(self, *, space: Any, base: ArchConfig, seed: int = 0) -> None:
        super().__init__()
        if not MODEL_TASKS[base.task].supernet:
            raise ValueError(f"the supernet covers classification only; task {base.task!r} is not supported (its "
                             f"decoder and skips have no weight-shared choices); run the search without the one-shot "
                             f"pre-screen")
        self.space, self.base = space, base
        model, stages, _ = _create(base.backbone, in_chans=base.in_chans, num_classes=base.num_classes,
                                   small_input=space.small_input, backbone_kwargs=base.backbone_kwargs)
        self.stage_names = stages
        self.stage_spaces = {s.index: s for s in space.stages}
        self.depths = [len(list(model.get_submodule(name).children())) for name in stages]
        pending = []  # (stage index, position, slots) with placeholders to fill after one dry run
        for index, stage_space in self.stage_spaces.items():
            stage = model.get_submodule(stages[index])
            positions = stage_space.position if _modules(stage_space, stage_space.types) else ()
            for position in ("in_block", "after_block", "stage_end"):  # in_block first: after_block wraps blocks
                if position in positions:
                    pending.append((index, position, install(stage, position, "every")))
        dry_run(model, in_chans=base.in_chans, size=_SIZE)
        for index, position, slots in pending:
            firsts, thens = (_modules(self.stage_spaces[index], types) for types in (
                self.stage_spaces[index].types, self.stage_spaces[index].then))
            for slot in slots:
                def choice(specs: list[Then], original: nn.Module | None = None) -> Choice:
                    return Choice({module_key(m): make_attention(m.attn, channels=slot.channels, **m.knobs)
                                   for m in specs}, original=original)
                first = choice(firsts, original=slot.replaced if position == "in_block" else None)
                slot.fill(_Stack(first, choice(thens)) if thens else first)
        self._head_path = None
        heads = [h for h in space.head if h != "avg"]
        if heads:
            from timm.layers import SelectAdaptivePool2d

            self._head_path = next(n for n, m in model.named_modules() if isinstance(m, SelectAdaptivePool2d))
            parent_name, _, child = self._head_path.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            pool = getattr(parent, child)
            with torch.no_grad():
                channels = model.eval().forward_features(torch.zeros(1, base.in_chans, _SIZE, _SIZE)).shape[1]
            model.train()
            setattr(parent, child, Choice({h: HEADS[h](pool, channels).build() for h in heads}, original=pool))
        self.model = model
        self.sampling = True
        self._rng = random.Random(seed)
        self.activate(self.sample())

    # ---- paths --------------------------------------------------------------------------------------------
    def path_state(self) -> object:
        """The path generator's state (save it with a training checkpoint, so a resumed training draws on)."""
        return self._rng.getstate()

    def set_path_state(self, state: object) -> None:
        self._rng.setstate(state)

    def sample(self) -> ArchConfig:
        """A path drawn uniformly from the space (its own seeded generator)."""
        return self.space.sample(_Uniform(self._rng), base=self.base)

    def activate(self, arch: ArchConfig | Mapping[str, Any]) -> None:
        """Set every Choice to ``arch`` (an architecture of the space); a stage or head the space does not offer is
        a one-line ``ValueError``."""
        arch = ArchConfig.from_dict(arch)
        for index, name in enumerate(self.stage_names):
            spec = arch.stages[index]
            stage_space = self.stage_spaces.get(index)
            if not (spec.is_none if stage_space is None else offers(stage_space, spec, depth=self.depths[index])):
                offered = stage_candidates(stage_space, depth=self.depths[index]) if stage_space else [StageConfig()]
                raise ValueError(f"stage {index}: {spec} is not in the space's stage {index} "
                                 f"(offers {', '.join(map(str, offered[:6]))}{', ...' if len(offered) > 6 else ''})")
            stage = self.model.get_submodule(name)
            chosen = self._chosen_blocks(index, spec)
            for b, block in enumerate(_blocks(stage)):
                after = block[1] if isinstance(block, nn.Sequential) and _is_slot(block[-1]) else None
                inner = block[0] if after is not None else block
                _set(after, spec, on=b in chosen and spec.position == "after_block")
                _set(getattr(inner, "se", None), spec, on=b in chosen and spec.position == "in_block")
            _set(getattr(stage, "attn", None), spec, on=not spec.is_none and spec.position == "stage_end")
        if arch.head not in self.space.head:
            raise ValueError(f"head {arch.head!r} is not in the space (heads: {', '.join(self.space.head)})")
        if self._head_path is not None:
            self.model.get_submodule(self._head_path).active = None if arch.head == "avg" else arch.head
        self.path = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sampling:
            self.activate(self.sample())
        return self.model(x)

    # ---- the standalone model of a path -----------------------------------------------------------------------
    def extract(self, arch: ArchConfig | Mapping[str, Any]) -> nn.Module:
        """``build(arch)`` with the weights (and BatchNorm buffers) ``arch``'s path holds in the supernet."""
        arch = ArchConfig.from_dict(arch)
        self.activate(arch)
        standalone = build(arch)
        own = self.model.state_dict()
        mapped = {key: own[self._supernet_key(key, arch)] for key in standalone.state_dict()}
        standalone.load_state_dict(mapped)
        return standalone

    def _supernet_key(self, key: str, arch: ArchConfig) -> str:
        """Where standalone state-dict ``key`` of ``build(arch)`` lives in the supernet."""
        if self._head_path is not None and key.startswith(self._head_path + "."):
            rest = key[len(self._head_path) + 1:]
            return f"{self._head_path}.choices.{arch.head}.{rest}" if arch.head != "avg" else \
                f"{self._head_path}.original.{rest}"
        for index, name in enumerate(self.stage_names):
            if not key.startswith(name + "."):
                continue
            spec, stage = arch.stages[index], self.model.get_submodule(name)
            block, _, rest = key[len(name) + 1:].partition(".")
            if block == "attn":  # stage_end
                return _slot_key(stage.attn, f"{name}.attn", spec, on=True, rest=rest)
            names = [n for n, _ in stage.named_children() if n != "attn"]
            # block names are "0", "1" (ResNet) or "b1", "b2" (RegNet): the index counts the stage's blocks
            here = names.index(block) in self._chosen_blocks(index, spec)
            if not spec.is_none and spec.position == "after_block" and here:
                part, _, rest = rest.partition(".")
                if part == "1":
                    return _slot_key(stage.get_submodule(block)[1], f"{name}.{block}.1", spec, on=True, rest=rest)
            prefix = f"{name}.{block}.0" if isinstance(stage.get_submodule(block), nn.Sequential) and _is_slot(
                stage.get_submodule(block)[-1]) else f"{name}.{block}"
            se = getattr(self.model.get_submodule(prefix), "se", None)
            if rest.startswith("se.") and _is_slot(se):
                on = not spec.is_none and spec.position == "in_block" and here
                return _slot_key(se, f"{prefix}.se", spec, on=on, rest=rest[len("se."):])
            return f"{prefix}.{rest}"
        return key

    def _chosen_blocks(self, index: int, spec: StageConfig) -> tuple[int, ...]:
        """Indices of stage ``index``'s blocks where ``spec`` puts a module (none for stage_end / no attention)."""
        if spec.is_none or not takes_blocks(spec.position):
            return ()
        return block_indices(check_blocks(spec.blocks), self.depths[index])


class _Stack(nn.Sequential):
    """A slot that may hold a stack: ``nn.Sequential(first Choice, then Choice)`` (the second inactive: identity)."""


def _is_slot(module: object) -> bool:
    return isinstance(module, (Choice, _Stack))


def _set(slot: nn.Module | None, spec: StageConfig, *, on: bool) -> None:
    """Activate ``spec``'s module (and its stack's second) at ``slot``, or deactivate it (``on`` False)."""
    if not _is_slot(slot):
        return
    first, then = (slot[0], slot[1]) if isinstance(slot, _Stack) else (slot, None)
    first.active = module_key(spec) if on else None
    if then is not None:
        then.active = module_key(spec.then) if on and spec.then is not None else None


def _slot_key(slot: nn.Module, path: str, spec: StageConfig, *, on: bool, rest: str) -> str:
    """Where standalone key ``{path}.{rest}`` (the module ``build`` put at a slot, or the block's own SE when not
    ``on``) lives in the supernet's slot at ``path``."""
    if isinstance(slot, _Stack):
        if on and spec.then is not None:  # build's nn.Sequential(first, then): rest starts with "0." or "1."
            part, _, rest = rest.partition(".")
            if part == "1":
                return f"{path}.1.choices.{module_key(spec.then)}.{rest}"
        path += ".0"
    return f"{path}.choices.{module_key(spec)}.{rest}" if on else f"{path}.original.{rest}"


def _blocks(stage: nn.Module) -> list[nn.Module]:
    """The stage's blocks (its children but a stage_end Choice)."""
    return [m for n, m in stage.named_children() if n != "attn"]
