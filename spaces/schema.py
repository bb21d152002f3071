"""Search-space schema: what a ``spaces/NAME.yaml`` file may say, parsed into frozen dataclasses.

A space says *which* stages of a backbone are searched and, per stage, which attention types, reduction
ratios, kernel sizes and positions are on offer; and it carries two budgets (``cpu`` and ``gpu``) that size a
search for the hardware it runs on. Sampling is conditional: a knob is drawn only for types that take it
(the attention registry in ``backbones`` says which), so Optuna never spends a dimension on a knob a type ignores.

Blocks (stage key ``blocks``) are offered as a list of choices, each ``every``, ``last``, a block index ``j`` (that
block alone) or a list of indices ``[0, 2]`` (drawn as the Optuna choice ``"0,2"``); or as the single word ``each``:
one yes/no knob per block (``s{i}.b{j}``), which TPE can learn block by block (EAN, https://arxiv.org/abs/2011.14058,
decides per plug-in position). A stack (stage key ``then``) offers the types of a second module run after the first
at each slot (``none``: no second module), its knobs drawn from the stage's ``reduction`` / ``kernel_size`` lists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from backbones import (ATTENTION, DEFAULT_BLOCKS, DEFAULT_HEAD, DEFAULT_POSITION, DEFAULT_SKIP, HEADS, MODEL_TASKS, NONE,
                       SKIPS, ArchConfig, Blocks, DecoderBlock, StageConfig, Then, block_indices, blocks_text,
                       check_blocks, decoder_attention_types, decoder_knobs, named_blocks, stage_depths,
                       takes_blocks)

EACH = "each"  # the ``blocks`` offer "decide every block by its own knob" (s{i}.b{j})


class SpaceError(ValueError):
    """A space file (or an override of it) is malformed; the message is one line naming the bad value."""


class _Suggester(Protocol):
    """The part of ``optuna.Trial`` a space needs; Ray's define-by-run captor has the same method."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class StageSpace:
    """What may go into one stage. ``index`` counts from 0 in the order of the backbone's ``feature_info`` stages."""

    index: int
    types: tuple[str, ...]
    reduction: tuple[int, ...]  # ratio r: the attention's hidden width is channels // r
    kernel_size: tuple[int, ...]  # odd, in pixels (ECA: 1-D kernel over channels; CBAM: spatial kernel)
    position: tuple[str, ...]  # where in the stage the module goes (see backbones.POSITIONS)
    # which blocks get it: every | last | "0,2" (indices) | each alone (a knob per block); not drawn for stage_end
    blocks: tuple[str, ...] = (DEFAULT_BLOCKS,)
    then: tuple[str, ...] = ()  # types of the stack's second module (none: no second); (): no stack is drawn

    @property
    def per_block(self) -> bool:
        """Whether every block is decided by its own knob (``blocks: each``)."""
        return self.blocks == (EACH,)

    def block_choices(self, *, depth: int) -> list[Blocks]:
        """The ``blocks`` values this stage can draw on a stage of ``depth`` blocks (``each``: every non-empty set
        of indices, as :meth:`SearchSpace.sample` draws them: ``every`` and ``last`` by name)."""
        if not self.per_block:
            return [check_blocks(b) for b in self.blocks]
        return [named_blocks(tuple(j for j in range(depth) if mask >> j & 1), depth) for mask in range(1, 1 << depth)]


@dataclass(frozen=True)
class DecoderSpace:
    """What may go into each U-Net decoder block of a ``task: segment`` space (the same offer for every block): the
    attention types (``none``, any registered type, or ``scse``; ``backbones.decoder``) and their knobs."""

    types: tuple[str, ...] = (NONE,)
    reduction: tuple[int, ...] = ()  # ratio r (types that take it)
    kernel_size: tuple[int, ...] = ()  # odd, pixels (types that take it)


@dataclass(frozen=True)
class Control:
    """A reference architecture every search trains at full budget besides the plain one: ``stage`` at every searched
    encoder stage and, in a segment space, ``decoder`` at every decoder block and ``skips`` at every skip."""

    stage: StageConfig = StageConfig()
    decoder: DecoderBlock = DecoderBlock()
    skips: str = DEFAULT_SKIP


ALL_IMAGES = "all"  # Budget.confirm_train_size: every train image, whatever the search trained on


@dataclass(frozen=True)
class ConfirmBudget:
    """What each confirmation run trains with (:attr:`Budget.confirm`)."""

    epochs: int
    train_size: int | None  # images from the train split (None = all)


@dataclass(frozen=True, kw_only=True)  # keyword-only: fields with defaults stand beside those without
class Budget:
    """How big one search is on one kind of hardware. Every field can be overridden as ``budget.FIELD=VALUE``."""

    backbone: str  # timm model name
    backbone_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # extra timm.create_model args
    epochs: int  # full training budget of one trial (ASHA's max_t)
    trials: int  # number of architectures sampled
    batch_size: int  # images per step
    lr: float  # peak learning rate of the one-cycle schedule
    weight_decay: float = 5e-4  # decoupled L2 coefficient
    train_size: int | None = None  # images from the train split (None = all)
    val_size: int  # images held out of the train split for val_acc
    gpu_per_trial: float = 1.0  # fraction of one GPU per trial (0.25 packs four trials on a GPU); ignored on CPU
    cpu_per_trial: int = 1  # CPU cores (and torch threads) per trial
    ema: float = 0.0  # decay per step of the evaluated weight average (trials.TrainConfig.ema; 0 = off)
    # The confirmation's budget (search.confirm): the search may be a cheap proxy of the real training, which the
    # confirmation then runs (Vertex AI NAS's two stages); never smaller than the search's (checked).
    confirm_epochs: int | None = None  # epochs of each confirmation run; None = the search's epochs
    # train images of each confirmation run: a count, ALL_IMAGES ("all": every train image outside val and test), or
    # None = the search's train_size
    confirm_train_size: int | str | None = None

    @property
    def confirm(self) -> ConfirmBudget:
        """The confirmation's budget with "the search's" and "all" resolved (the one place they are)."""
        size = self.confirm_train_size
        return ConfirmBudget(epochs=self.epochs if self.confirm_epochs is None else self.confirm_epochs,
                             train_size=self.train_size if size is None else None if size == ALL_IMAGES else size)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Budget:
        """Return a copy with the non-null entries of ``overrides`` applied (unknown fields are an error)."""
        known = {f.name for f in dataclasses.fields(self)}
        values = {k: v for k, v in overrides.items() if v is not None}
        for key in values:
            if key not in known:
                raise SpaceError(f"unknown budget key {key!r}; valid keys: {', '.join(sorted(known))}")
        return _check_budget(dataclasses.replace(self, **values), where="budget override")


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated ``spaces/NAME.yaml``."""

    name: str
    description: str
    dataset: str
    small_input: bool  # stem stride 1 and no stem pooling, for 28x28 / 32x32 images
    num_stages: int  # stages of the backbone (those not listed in ``stages`` get no attention)
    stages: tuple[StageSpace, ...]
    budgets: Mapping[str, Budget]  # "cpu" and "gpu"
    head: tuple[str, ...] = (DEFAULT_HEAD,)  # classifier-head pooling choices (see backbones.HEADS)
    # Reference placements every search also trains at full budget (name -> the StageConfig put at every searched
    # stage); the plain backbone (PLAIN_CONTROL) is always run besides these.
    controls: Mapping[str, Control] = dataclasses.field(default_factory=lambda: dict(DEFAULT_CONTROLS))
    task: str = "classify"  # backbones.MODEL_TASKS: classify | segment (a U-Net; trials.TRIAL_TASKS says its metric)
    # segment: what each decoder block may take, and the skip modes offered at every skip (backbones.SKIPS)
    decoder: DecoderSpace | None = None
    skips: tuple[str, ...] = ()

    def sample(self, trial: _Suggester, *, base: ArchConfig) -> ArchConfig:
        """Draw one architecture from ``trial`` onto ``base`` (the search's backbone, sizes and head, no attention).

        Called by the sampler once per trial. Optuna parameter names follow :meth:`ArchConfig.params`
        (``head``, ``s{i}.attn``, ``s{i}.reduction``, ..., ``s{i}.then``, ``s{i}.then.reduction``; in a segment space
        also ``d{j}.attn``, ``d{j}.reduction``, ``d{j}.kernel_size`` per decoder block and ``k{i}`` per skip). Knobs
        are drawn only where the drawn type takes them (``blocks`` only where the drawn position is not
        ``stage_end``; ``then`` only where the stage offers it), and a categorical with one choice is still drawn
        (recorded) so every trial has the same keys per type. With ``blocks: each`` the knobs ``s{i}.b{j}`` (False /
        True) decide the blocks instead of ``s{i}.blocks``; the last block's knob is drawn only when an earlier block
        is on (else the last block is on: a stage with attention never selects no block).
        """
        stages = list(base.stages)
        for stage in self.stages:
            prefix = f"s{stage.index}."
            kind = trial.suggest_categorical(prefix + "attn", list(stage.types))
            if kind == NONE:
                stages[stage.index] = StageConfig()
                continue
            knobs = {knob: trial.suggest_categorical(prefix + knob, list(getattr(stage, knob)))
                     for knob in sorted(ATTENTION[kind].knobs)}
            position = trial.suggest_categorical(prefix + "position", list(stage.position))
            blocks: Blocks = DEFAULT_BLOCKS
            if takes_blocks(position) and stage.per_block:
                blocks = _draw_each(trial, prefix, depth=stage_depths(
                    backbone=base.backbone, backbone_kwargs=base.backbone_kwargs)[stage.index])
            elif takes_blocks(position):
                blocks = check_blocks(trial.suggest_categorical(prefix + "blocks", list(stage.blocks)))
            then = trial.suggest_categorical(prefix + "then", list(stage.then)) if stage.then else NONE
            then_knobs = {knob: trial.suggest_categorical(f"{prefix}then.{knob}", list(getattr(stage, knob)))
                          for knob in sorted(ATTENTION[then].knobs)}
            stages[stage.index] = StageConfig(attn=kind, position=position, blocks=blocks, **knobs,
                                              then=None if then == NONE else Then(then, **then_knobs))
        decoder, skips = self._sample_decoder(trial, base=base)
        head = trial.suggest_categorical("head", list(self.head))
        return dataclasses.replace(base, head=head, small_input=self.small_input, stages=tuple(stages),
                                   decoder=decoder, skips=skips)

    def _sample_decoder(self, trial: _Suggester, *, base: ArchConfig) -> tuple[tuple[DecoderBlock, ...], tuple[str, ...]]:
        """A segment space's decoder blocks (``d{j}.*``) and skips (``k{i}``); ``base``'s (none) otherwise."""
        if self.decoder is None:
            return base.decoder, base.skips
        blocks = []
        for j in range(len(base.decoder)):
            kind = trial.suggest_categorical(f"d{j}.attn", list(self.decoder.types))
            knobs = {knob: trial.suggest_categorical(f"d{j}.{knob}", list(getattr(self.decoder, knob)))
                     for knob in sorted(decoder_knobs(kind))}
            blocks.append(DecoderBlock(attn=kind, **knobs))
        skips = tuple(trial.suggest_categorical(f"k{i}", list(self.skips)) for i in range(len(base.skips)))
        return tuple(blocks), skips

    def control_archs(self, *, base: ArchConfig) -> dict[str, ArchConfig]:
        """The controls as architectures on ``base``: the plain backbone first, then each hand placement at every
        searched stage (head ``avg``), and in a segment space its decoder block at every block and its skip mode at
        every skip."""
        searched = {stage.index for stage in self.stages}
        plain = base.plain()
        archs = {PLAIN_CONTROL: plain}
        for name, control in self.controls.items():
            archs[name] = dataclasses.replace(
                plain, stages=tuple(control.stage if i in searched else StageConfig() for i in range(self.num_stages)),
                decoder=tuple(control.decoder for _ in plain.decoder), skips=tuple(control.skips for _ in plain.skips))
        return archs

    def params_of(self, arch: ArchConfig) -> dict[str, Any] | None:
        """The Optuna parameters under which :meth:`sample` draws ``arch``, or None when the space cannot draw it
        (a control with a knob value the space does not offer): lets a control be enqueued in the study."""
        if arch.head not in self.head:
            return None
        params: dict[str, Any] = {"head": arch.head}
        searched = {stage.index: stage for stage in self.stages}
        for i, stage in enumerate(arch.stages):
            space = searched.get(i)
            if space is None:
                if not stage.is_none:
                    return None
                continue
            offered = {"attn": space.types, "position": space.position, "blocks": space.blocks,
                       "reduction": space.reduction, "kernel_size": space.kernel_size, "then": space.then or (NONE,),
                       "then.reduction": space.reduction, "then.kernel_size": space.kernel_size}
            drawn = {"attn": stage.attn} if stage.is_none else {
                "attn": stage.attn, **stage.knobs, "position": stage.position,
                **({"blocks": blocks_text(stage.blocks)} if takes_blocks(stage.position) else {}),
                **({"then": stage.then.attn if stage.then else NONE} if space.then else {}),
                **{f"then.{k}": v for k, v in (stage.then.knobs if stage.then else {}).items()}}
            if stage.then is not None and not space.then:
                return None
            if space.per_block and "blocks" in drawn:
                depth = stage_depths(backbone=arch.backbone, backbone_kwargs=arch.backbone_kwargs)[i]
                try:
                    on = block_indices(stage.blocks, depth)
                except ValueError:
                    return None
                drawn.pop("blocks")
                drawn.update({f"b{j}": j in on for j in range(depth - 1)})
                if any(j in on for j in range(depth - 1)):
                    drawn[f"b{depth - 1}"] = depth - 1 in on
                offered.update({f"b{j}": (False, True) for j in range(depth)})
            if any(value not in offered[key] for key, value in drawn.items()):
                return None
            params.update({f"s{i}.{key}": value for key, value in drawn.items()})
        if self.decoder is None:
            return params
        for j, block in enumerate(arch.decoder):
            offered = {"attn": self.decoder.types, "reduction": self.decoder.reduction,
                       "kernel_size": self.decoder.kernel_size}
            drawn = {"attn": block.attn, **block.knobs}
            if any(value not in offered[key] for key, value in drawn.items()):
                return None
            params.update({f"d{j}.{key}": value for key, value in drawn.items()})
        if any(skip not in self.skips for skip in arch.skips):
            return None
        return {**params, **{f"k{i}": skip for i, skip in enumerate(arch.skips)}}

    def base_arch(self, *, backbone: str, in_chans: int, num_classes: int,
                  backbone_kwargs: Mapping[str, Any] | None = None) -> ArchConfig:
        """The plain architecture of this space on ``backbone`` (no attention, default head): what ``sample`` fills."""
        decoder = MODEL_TASKS[self.task].decoder
        return ArchConfig(backbone=backbone, in_chans=in_chans, num_classes=num_classes, small_input=self.small_input,
                          stages=tuple(StageConfig() for _ in range(self.num_stages)),
                          backbone_kwargs=dict(backbone_kwargs or {}), task=self.task,
                          decoder=tuple(DecoderBlock() for _ in range(self.num_stages)) if decoder else (),
                          skips=tuple(DEFAULT_SKIP for _ in range(self.num_stages - 1)) if decoder else ())


PLAIN_CONTROL = "plain"  # the control with no attention anywhere; every search runs it
# Controls when a space lists none: the hand placements users would otherwise pick, after every block of every
# searched stage. SE (Hu et al., https://arxiv.org/abs/1709.01507) r16 and CBAM (Woo et al.,
# https://arxiv.org/abs/1807.06521) r16/k7 are both papers' defaults.
DEFAULT_CONTROLS: Mapping[str, Control] = {
    "se_r16": Control(StageConfig(attn="se", reduction=16)),
    "cbam_r16_k7": Control(StageConfig(attn="cbam", reduction=16, kernel_size=7)),
}

_ARCH_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ArchConfig)}  # small_input: ArchConfig's
_SPACE_KEYS = {"name", "description", "dataset", "small_input", "num_stages", "head", "defaults", "stages", "budgets",
               "controls", "task", "decoder", "skips"}
_DECODER_KEYS = {"types", "reduction", "kernel_size"}
_STAGE_KEYS = {"types", "reduction", "kernel_size", "position", "blocks", "then"}


def _draw_each(trial: _Suggester, prefix: str, *, depth: int) -> Blocks:
    """``blocks: each``: one False / True knob ``{prefix}b{j}`` per block; the last is drawn only when an earlier
    one is on (otherwise it is on), so the set is never empty. All blocks read ``every``, the last alone ``last``."""
    on = [trial.suggest_categorical(f"{prefix}b{j}", [False, True]) for j in range(depth - 1)]
    on.append(trial.suggest_categorical(f"{prefix}b{depth - 1}", [False, True]) if any(on) else True)
    return named_blocks(tuple(j for j, chosen in enumerate(on) if chosen), depth)


def parse_space(raw: Mapping[str, Any], *, name: str) -> SearchSpace:
    """Validate the mapping read from a YAML file and build a :class:`SearchSpace` (errors are one line)."""
    if not isinstance(raw, Mapping):
        raise SpaceError(f"space {name!r}: expected a mapping at the top level, got {type(raw).__name__}")
    _reject_unknown(raw, _SPACE_KEYS, where=f"space {name!r}")
    for key in ("dataset", "num_stages", "stages", "budgets"):
        if key not in raw:
            raise SpaceError(f"space {name!r}: missing key {key!r}")
    num_stages = _positive_int(raw["num_stages"], where=f"space {name!r}: num_stages")
    defaults = raw.get("defaults") or {}
    _reject_unknown(defaults, _STAGE_KEYS, where=f"space {name!r}: defaults")
    stages_raw = raw["stages"]
    if not isinstance(stages_raw, Mapping) or not stages_raw:
        raise SpaceError(f"space {name!r}: 'stages' must map stage indices (0..{num_stages - 1}) to settings")
    stages = tuple(
        _parse_stage(index, {**defaults, **(settings or {})}, num_stages=num_stages, where=f"space {name!r}")
        for index, settings in sorted(stages_raw.items(), key=lambda item: int(item[0]))
    )
    budgets_raw = raw["budgets"]
    if not isinstance(budgets_raw, Mapping) or set(budgets_raw) != {"cpu", "gpu"}:
        raise SpaceError(f"space {name!r}: 'budgets' must have exactly the keys cpu and gpu")
    budgets = {kind: _parse_budget(values, where=f"space {name!r}: budgets.{kind}") for kind, values in budgets_raw.items()}
    head = _choices(raw, "head", where=f"space {name!r}", cast=str, default=(DEFAULT_HEAD,))
    _check_names(head, HEADS, what="head", where=f"space {name!r}")
    task = str(raw.get("task", "classify"))
    _check_names([task], list(MODEL_TASKS), what="task", where=f"space {name!r}")
    decoder, skips = _parse_decoder(raw, task=task, where=f"space {name!r}")
    if decoder is not None and head != (DEFAULT_HEAD,):
        raise SpaceError(f"space {name!r}: task {task!r} has no classifier head; head must be [{DEFAULT_HEAD}]")
    controls = _parse_controls(raw.get("controls"), where=f"space {name!r}: controls", decoder=decoder is not None)
    return SearchSpace(
        name=str(raw.get("name", name)),
        description=str(raw.get("description", "")),
        dataset=str(raw["dataset"]),
        small_input=bool(raw.get("small_input", _ARCH_DEFAULTS["small_input"])),
        num_stages=num_stages,
        stages=stages,
        budgets=budgets,
        head=head,
        controls=controls,
        task=task,
        decoder=decoder,
        skips=skips,
    )


def _parse_decoder(raw: Mapping[str, Any], *, task: str, where: str) -> tuple[DecoderSpace | None, tuple[str, ...]]:
    """``decoder: {types, reduction, kernel_size}`` and ``skips: [none, gate]``: required by a task with a decoder
    (segment), refused otherwise."""
    if not MODEL_TASKS[task].decoder:
        for key in ("decoder", "skips"):
            if key in raw:
                raise SpaceError(f"{where}: {key!r} is for a task with a decoder (task: segment); this space's task is "
                                 f"{task!r}")
        return None, ()
    settings = raw.get("decoder")
    if settings is None:
        raise SpaceError(f"{where}: task {task!r} needs 'decoder' (types, reduction, kernel_size of each block)")
    where_d = f"{where}: decoder"
    _reject_unknown(settings, _DECODER_KEYS, where=where_d)
    types = _choices(settings, "types", where=where_d, cast=str)
    _check_names(types, decoder_attention_types(), what="decoder attention type", where=where_d)
    needs = set().union(*(decoder_knobs(kind) for kind in types))
    knobs = {knob: _choices(settings, knob, where=where_d, cast=int, required=knob in needs)
             for knob in ("reduction", "kernel_size")}
    for knob, values in knobs.items():
        taker = next((kind for kind in types if knob in decoder_knobs(kind)), None)
        for value in values if taker else ():
            try:
                DecoderBlock(attn=taker, **{knob: value})
            except ValueError as err:
                raise SpaceError(f"{where_d}: {err}") from None
    skips = _choices(raw, "skips", where=where, cast=str, default=(DEFAULT_SKIP,))
    _check_names(skips, list(SKIPS), what="skip", where=f"{where}: skips")
    return DecoderSpace(types=types, **knobs), skips


def _parse_controls(raw: Any, *, where: str, decoder: bool = False) -> dict[str, Control]:
    """``controls: {NAME: {attn: se, reduction: 16, ...}}`` (a StageConfig put at every searched stage); in a space
    with a decoder also ``decoder: {attn: scse, ...}`` (at every decoder block) and ``skips: gate`` (at every skip),
    e.g. ``gated_skips: {skips: gate}``; absent: :data:`DEFAULT_CONTROLS`; ``{}``: only the plain backbone."""
    if raw is None:
        return dict(DEFAULT_CONTROLS)
    if not isinstance(raw, Mapping):
        raise SpaceError(f"{where}: expected a mapping NAME: {{attn: ..., reduction: ..., ...}}")
    controls = {}
    for name, fields in raw.items():
        if name == PLAIN_CONTROL:
            raise SpaceError(f"{where}: {PLAIN_CONTROL!r} is always run; name your controls otherwise")
        if not isinstance(fields, Mapping):
            raise SpaceError(f"{where}: {name}: expected a mapping such as {{attn: se, reduction: 16}}")
        stage = {k: v for k, v in fields.items() if k not in ("decoder", "skips")}
        if not decoder and len(stage) != len(fields):
            raise SpaceError(f"{where}: {name}: 'decoder' and 'skips' are for a task with a decoder (task: segment)")
        try:
            controls[str(name)] = Control(
                stage=StageConfig.from_dict(stage) if stage else StageConfig(),
                decoder=DecoderBlock.from_dict(fields["decoder"]) if "decoder" in fields else DecoderBlock(),
                skips=_skip(fields.get("skips", DEFAULT_SKIP)))
        except (TypeError, ValueError) as err:
            raise SpaceError(f"{where}: {name}: {err}") from None
    return controls


def _skip(mode: Any) -> str:
    if mode not in SKIPS:
        raise ValueError(f"unknown skip {mode!r}; valid: {', '.join(SKIPS)}")
    return mode


def _parse_stage(index: Any, settings: Mapping[str, Any], *, num_stages: int, where: str) -> StageSpace:
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: stage index {index!r} is not an integer") from None
    if not 0 <= index < num_stages:
        raise SpaceError(f"{where}: stage {index} does not exist; valid stages: 0..{num_stages - 1}")
    where = f"{where}: stage {index}"
    _reject_unknown(settings, _STAGE_KEYS, where=where)
    types = _choices(settings, "types", where=where, cast=str)
    then = _choices(settings, "then", where=where, cast=str, required=False)
    needs = set()
    for kind in types:
        _check_stage(where, attn=kind)
        needs |= ATTENTION[kind].knobs
    for kind in then:
        _check_stage(where, attn="se", then={"attn": kind})
        needs |= ATTENTION[kind].knobs
    reduction = _choices(settings, "reduction", where=where, cast=int, required="reduction" in needs)
    kernel_size = _choices(settings, "kernel_size", where=where, cast=int, required="kernel_size" in needs)
    for knob, values in (("reduction", reduction), ("kernel_size", kernel_size)):
        taker = next((kind for kind in types + then if knob in ATTENTION[kind].knobs), None)
        for value in values if taker else ():
            _check_stage(where, attn=taker, **{knob: value})
    position = _choices(settings, "position", where=where, cast=str, default=(DEFAULT_POSITION,))
    for value in position:
        _check_stage(where, position=value)
    return StageSpace(index=index, types=types, reduction=reduction, kernel_size=kernel_size, position=position,
                      blocks=_parse_blocks(settings.get("blocks", [DEFAULT_BLOCKS]), where=where), then=then)


def _parse_blocks(raw: Any, *, where: str) -> tuple[str, ...]:
    """The ``blocks`` offer as Optuna choices: ``every``, ``last``, ``"0,2"`` (from ``[0, 2]``; a bare ``j`` is block
    ``j`` alone), or ``(each,)``."""
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise SpaceError(f"{where}: 'blocks' is an empty list")
    if EACH in values and len(values) > 1:
        raise SpaceError(f"{where}: blocks {EACH!r} decides every block by its own knob; offer it alone, not with "
                         f"{[v for v in values if v != EACH]}")
    if values == [EACH]:
        return (EACH,)
    out = []
    for value in values:
        value = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        try:
            out.append(blocks_text(check_blocks(value)))
        except ValueError as err:
            raise SpaceError(f"{where}: {err}") from None
    return tuple(dict.fromkeys(out))


def _check_stage(where: str, **fields: Any) -> None:
    """Validate one offered value through :class:`StageConfig` (the one home of these rules)."""
    try:
        StageConfig(**fields)
    except ValueError as err:
        raise SpaceError(f"{where}: {err}") from None


def _check_names(values: Sequence[str], valid: Sequence[str], *, what: str, where: str) -> None:
    for value in values:
        if value not in valid:
            raise SpaceError(f"{where}: unknown {what} {value!r}; valid: {', '.join(valid)}")


def _parse_budget(values: Any, *, where: str) -> Budget:
    if not isinstance(values, Mapping):
        raise SpaceError(f"{where}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(Budget)}
    _reject_unknown(values, set(fields), where=where)
    missing = [key for key, f in fields.items() if key not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SpaceError(f"{where}: missing {', '.join(missing)}")
    return _check_budget(Budget(**values), where=where)  # the defaults are Budget's


def _check_budget(budget: Budget, *, where: str) -> Budget:
    for key in ("epochs", "trials", "batch_size", "val_size", "cpu_per_trial"):
        _positive_int(getattr(budget, key), where=f"{where}: {key}")
    if budget.train_size is not None:
        _positive_int(budget.train_size, where=f"{where}: train_size")
    if not isinstance(budget.backbone_kwargs, Mapping):
        raise SpaceError(f"{where}: backbone_kwargs={budget.backbone_kwargs!r} must be a mapping of timm arguments")
    for key in ("lr", "gpu_per_trial"):
        value = getattr(budget, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise SpaceError(f"{where}: {key}={value!r} must be a positive number")
    if not isinstance(budget.weight_decay, (int, float)) or budget.weight_decay < 0:
        raise SpaceError(f"{where}: weight_decay={budget.weight_decay!r} must be a number >= 0")
    if not isinstance(budget.ema, (int, float)) or isinstance(budget.ema, bool) or not 0 <= budget.ema < 1:
        raise SpaceError(f"{where}: ema={budget.ema!r} must be a number in [0, 1) (0 = off)")
    return _check_confirm_budget(budget, where=where)


def _check_confirm_budget(budget: Budget, *, where: str) -> Budget:
    """confirm_epochs / confirm_train_size: their types, and a confirmation no smaller than the search (it is the
    real training the search stands in for; a smaller one would judge the front on less than it was found on)."""
    if budget.confirm_epochs is not None:
        _positive_int(budget.confirm_epochs, where=f"{where}: confirm_epochs")
    size = budget.confirm_train_size
    if size is not None and size != ALL_IMAGES and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise SpaceError(f"{where}: confirm_train_size={size!r} must be a positive integer, {ALL_IMAGES!r} (every "
                         f"train image) or null (the search's train_size)")
    confirm = budget.confirm
    if confirm.epochs < budget.epochs:
        raise SpaceError(f"{where}: confirm_epochs={confirm.epochs} is below epochs={budget.epochs}: the "
                         f"confirmation trains at least the search's budget (set budget.confirm_epochs too)")
    if confirm.train_size is not None and (budget.train_size is None or confirm.train_size < budget.train_size):
        search = "all" if budget.train_size is None else budget.train_size
        raise SpaceError(f"{where}: confirm_train_size={confirm.train_size} is below train_size={search}: the "
                         f"confirmation trains at least the search's images (set budget.confirm_train_size too)")
    return budget


def _choices(settings: Mapping[str, Any], key: str, *, where: str, cast: type, required: bool = True,
             default: tuple = ()) -> tuple:
    value = settings.get(key, default if default else None)
    if value is None or value == ():
        if required:
            raise SpaceError(f"{where}: {key!r} needs a list of choices")
        return ()
    if not isinstance(value, (list, tuple)):
        value = [value]
    if not value:
        raise SpaceError(f"{where}: {key!r} is an empty list")
    try:
        out = tuple(cast(v) for v in value)
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: {key}={list(value)!r} must be a list of {cast.__name__}") from None
    if cast is int and any(isinstance(v, bool) or float(v) != int(v) for v in value):
        raise SpaceError(f"{where}: {key}={list(value)!r} must be a list of int")
    return out


def _positive_int(value: Any, *, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpaceError(f"{where}={value!r} must be a positive integer")
    return value


def _reject_unknown(mapping: Any, allowed: set[str], *, where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise SpaceError(f"{where}: expected a mapping, got {mapping!r}")
    for key in mapping:
        if key not in allowed:
            raise SpaceError(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(allowed))}")
