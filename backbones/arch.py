"""ArchConfig: the contract between the search and everything else, as a frozen, validated type.

It is what ``SearchSpace.sample`` produces, what MLflow stores (:meth:`ArchConfig.params` as params, :meth:`to_dict`
as ``arch.json``), what :func:`backbones.build` consumes and what ``search.export`` writes down. JSON form::

    {"backbone": "resnet10t",   # timm model name (pretrained=False)
     "in_chans": 1, "num_classes": 10,
     "small_input": True,       # stem stride 1, no stem pooling (see placement.apply_small_input)
     "head": "avg",             # classifier pooling (backbones.HEADS)
     "backbone_kwargs": {"channels": [32, 64, 128, 256]},   # extra timm.create_model arguments (optional)
     "stages": [{"attn": "none"},
                {"attn": "se", "reduction": 8},                                  # position after_block, blocks every
                {"attn": "eca", "kernel_size": 5, "position": "in_block", "blocks": "last"},
                {"attn": "cbam", "reduction": 16, "kernel_size": 7, "position": "stage_end"}]}

A stage may also name explicit blocks and a second module applied to the first one's output (a stack of two, as
CBAM composes a channel and a spatial gate; ``then``: a type from the registry and its knobs); both keys are written
only when used, so an architecture without them has the JSON it always had::

     {"attn": "se", "reduction": 8, "position": "in_block", "blocks": [0, 2],            # blocks 0 and 2 only
      "then": {"attn": "spatial", "kernel_size": 7}}                                    # se, then spatial

A segmentation architecture (``task: segment``, a U-Net: ``backbones.unet``) adds one decoder block per stage,
coarsest first, and one skip mode per stage but the last (``backbones.decoder``); its ``head`` stays ``avg`` (there
is no classifier) and ``num_classes`` counts the per-pixel classes, background included::

     "task": "segment",
     "decoder": [{"attn": "none"}, {"attn": "scse", "reduction": 8}, {"attn": "se", "reduction": 4}, {"attn": "none"}],
     "skips": ["gate", "none", "gate"]      # skips[i]: stage i's output

A classification ArchConfig writes none of these three keys (its JSON is what it was before segmentation).

Validation happens once, in :meth:`ArchConfig.from_dict` / the constructors; errors are one-line ``ValueError``\\ s
naming the bad value and the valid choices. Checks that need the backbone (stage count, positions a block supports,
ratios against the real channel widths) happen in :func:`backbones.build`.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attention import KNOB_ORDER, check_attention
from .decoder import DEFAULT_SKIP, DecoderBlock, check_skip
from .head import check_head
from .placement import BLOCKS, POSITIONS, Blocks, blocks_text, check_blocks, named_blocks, takes_blocks
from .task import CLASSIFY, check_task

NONE = "none"  # the attention type "no attention here"
DEFAULT_POSITION = "after_block"
DEFAULT_BLOCKS = BLOCKS[0]  # "every"
DEFAULT_HEAD = "avg"
_CHANNELS_UNKNOWN = 1 << 30  # check names and knob values before the real widths are known (build checks those)


def _knobs(spec: Any) -> dict[str, int]:
    return {name: getattr(spec, name) for name in KNOB_ORDER if getattr(spec, name) is not None}


def _module_text(spec: Any) -> str:
    text = spec.attn + (f"/r{spec.reduction}" if spec.reduction is not None else "")
    return text + (f"/k{spec.kernel_size}" if spec.kernel_size is not None else "")


@dataclass(frozen=True)
class Then:
    """The second module of a stack (``StageConfig.then``): a registered attention type and its knobs, applied to
    the first module's output at the same slot (so it sees the same channels)."""

    attn: str
    reduction: int | None = None
    kernel_size: int | None = None

    def __post_init__(self) -> None:
        check_attention(self.attn, channels=_CHANNELS_UNKNOWN, **self.knobs)

    @property
    def knobs(self) -> dict[str, int]:
        return _knobs(self)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Then:
        if isinstance(spec, Then):
            return spec
        if not isinstance(spec, Mapping) or "attn" not in spec:
            raise ValueError(f"then={spec!r} must be a dict with an 'attn' key (e.g. {{'attn': 'spatial'}})")
        valid = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(spec) - set(valid)):
            raise ValueError(f"then: unknown key(s) {unknown}; valid: {valid}")
        return cls(**spec)

    def to_dict(self) -> dict[str, Any]:
        return {"attn": self.attn, **self.knobs}

    def __str__(self) -> str:
        return _module_text(self)


@dataclass(frozen=True)
class StageConfig:
    """What goes into one stage: an attention type, its knobs, where in the stage and in which blocks; optionally a
    second module (``then``) applied after the first at each slot (a stack of depth 2)."""

    attn: str = NONE  # a name in backbones.ATTENTION ("none": the stage is left as timm built it)
    reduction: int | None = None  # hidden width = channels // reduction (types that take it)
    kernel_size: int | None = None  # odd, pixels (ECA: 1-D over channels; CBAM: spatial), types that take it
    position: str = DEFAULT_POSITION  # after_block | in_block | stage_end (backbones.POSITIONS)
    # every | last | block indices, e.g. (0, 2): which blocks of the stage get a module (stage_end places one)
    blocks: Blocks = DEFAULT_BLOCKS
    then: Then | None = None  # the stack's second module; None: one module per slot ({"attn": "none"} reads as None)

    def __post_init__(self) -> None:
        check_attention(self.attn, channels=_CHANNELS_UNKNOWN, **self.knobs)
        if self.position not in POSITIONS:
            raise ValueError(f"unknown position {self.position!r}; valid: {', '.join(POSITIONS)}")
        object.__setattr__(self, "blocks", check_blocks(self.blocks))
        if self.then is not None:
            then = Then.from_dict(self.then)
            object.__setattr__(self, "then", None if then.attn == NONE else then)
        if self.then is not None and self.is_none:
            raise ValueError(f"then={self.then.attn!r} needs a first module; attn is 'none' (put "
                             f"{self.then.attn!r} in attn)")

    @property
    def knobs(self) -> dict[str, int]:
        """The knobs that are set, as ``make_attention`` keyword arguments."""
        return _knobs(self)

    @property
    def modules(self) -> list[tuple[str, dict[str, int]]]:
        """The stack at each slot, in the order it runs: (type, knobs) of the first module, then of ``then``."""
        first = [] if self.is_none else [(self.attn, self.knobs)]
        return first + ([(self.then.attn, self.then.knobs)] if self.then is not None else [])

    @property
    def is_none(self) -> bool:
        return self.attn == NONE

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> StageConfig:
        if not isinstance(spec, Mapping) or "attn" not in spec:
            raise ValueError(f"{spec!r} must be a dict with an 'attn' key")
        valid = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(spec) - set(valid)):
            raise ValueError(f"unknown key(s) {unknown}; valid: {valid}")
        return cls(**spec)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``attn``, the knobs that are set, and ``position``/``blocks`` (only when attention is on;
        ``blocks`` a name or a list of indices), then ``then`` (only when set)."""
        if self.is_none:
            return {"attn": NONE}
        blocks = self.blocks if isinstance(self.blocks, str) else list(self.blocks)
        out = {"attn": self.attn, **self.knobs, "position": self.position, "blocks": blocks}
        return out | ({"then": self.then.to_dict()} if self.then is not None else {})

    def params(self) -> dict[str, str]:
        """Flat strings for MLflow (keys without the ``s{i}.`` prefix): the JSON keys, ``blocks`` as text
        (``every``, ``last``, ``0,2``), the stack's second module as ``then`` and ``then.<knob>``."""
        out = {key: str(value) for key, value in self.to_dict().items() if key != "then"}
        if "blocks" in out:
            out["blocks"] = blocks_text(self.blocks)
        if self.then is not None:
            out |= {"then": self.then.attn, **{f"then.{k}": str(v) for k, v in self.then.knobs.items()}}
        return out

    def canonical(self, *, depth: int | None = None) -> StageConfig:
        """The same computation in one spelling: no attention -> ``StageConfig()``; ``blocks`` of ``stage_end`` ->
        ``every``; with the stage's block count ``depth`` known, block indices naming every block -> ``every`` and
        only the last one -> ``last``; one module after the last block (``after_block`` with ``last``, or with
        ``every`` on a one-block stage) -> ``stage_end``, and ``in_block`` of a one-block stage -> ``blocks:
        every``. Knobs a type does not take cannot be set (the constructor refuses them); the stack's order is kept
        (``se`` then ``spatial`` differs from ``spatial`` then ``se``)."""
        if self.is_none:
            return StageConfig()
        stage = self
        if depth is not None:
            stage = dataclasses.replace(stage, blocks=named_blocks(stage.blocks, depth))
        if not takes_blocks(stage.position) or (depth == 1 and stage.position == "in_block"):
            stage = dataclasses.replace(stage, blocks=DEFAULT_BLOCKS)
        if stage.position == "after_block" and (stage.blocks == "last" or depth == 1) and depth is not None:
            stage = dataclasses.replace(stage, position="stage_end", blocks=DEFAULT_BLOCKS)
        return stage

    def __str__(self) -> str:
        """Short form: ``-`` (none), ``se/r8``, ``eca/k5@in_block@last``, ``cbam/r16/k7@stage_end``; a stack as
        ``se/r8>spatial/k7``, block indices as ``@[0,2]``."""
        if self.is_none:
            return "-"
        text = _module_text(self) + (f">{self.then}" if self.then is not None else "")
        text += f"@{self.position}" if self.position != DEFAULT_POSITION else ""
        if self.blocks != DEFAULT_BLOCKS and takes_blocks(self.position):
            text += f"@{self.blocks}" if isinstance(self.blocks, str) else f"@[{blocks_text(self.blocks)}]"
        return text


@dataclass(frozen=True)
class ArchConfig:
    """One architecture: a timm backbone, its input/output sizes, the classifier head and one StageConfig per stage.

    Equal configs build the same model; :meth:`canonical` maps spellings of the same computation to one, so
    ``canonical(a) == canonical(b)`` (``backbones.canonical``; and their hashes) tell that two sampled architectures are the same.
    """

    backbone: str  # timm model name
    in_chans: int  # image channels (1 Fashion-MNIST, 3 CIFAR)
    num_classes: int
    stages: tuple[StageConfig, ...]  # one per backbone stage, in feature_info order
    small_input: bool = True  # stem stride 1 and no stem max-pool, for 28x28 / 32x32 images (spaces default to it)
    head: str = DEFAULT_HEAD  # classifier pooling (backbones.HEADS)
    backbone_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)  # extra timm.create_model args
    task: str = CLASSIFY  # backbones.task.MODEL_TASKS: "classify" | "segment"
    decoder: tuple[DecoderBlock, ...] = ()  # segment: one per stage, coarsest block first (backbones.decoder)
    skips: tuple[str, ...] = ()  # segment: "none" | "gate" for the outputs of stages 0 .. S-2

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ValueError(f"ArchConfig backbone={self.backbone!r} must be a timm model name")
        for key in ("in_chans", "num_classes"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ArchConfig {key}={value!r} must be an int >= 1")
        if not isinstance(self.small_input, bool):
            raise ValueError(f"ArchConfig small_input={self.small_input!r} must be true or false")
        check_head(self.head)
        if not isinstance(self.backbone_kwargs, Mapping):
            raise ValueError(f"ArchConfig backbone_kwargs={self.backbone_kwargs!r} must be a mapping of timm "
                             f"arguments")
        if isinstance(self.stages, (str, bytes)) or not isinstance(self.stages, Sequence) or not all(
                isinstance(s, StageConfig) for s in self.stages):
            raise ValueError(f"ArchConfig stages={self.stages!r} must be a list of StageConfig, one per stage")
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "backbone_kwargs", json.loads(json.dumps(dict(self.backbone_kwargs))))
        self._check_task_parts()

    def _check_task_parts(self) -> None:
        """``task`` and what it implies: decoder blocks and skips for a task with a decoder (one block per stage,
        one skip per stage but the last; head ``avg``), none for one without."""
        task = check_task(self.task)
        for key, kind in (("decoder", DecoderBlock), ("skips", str)):
            value = getattr(self, key)
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
                    isinstance(v, kind) for v in value):
                raise ValueError(f"ArchConfig {key}={value!r} must be a list of {kind.__name__}")
            object.__setattr__(self, key, tuple(value))
        for skip in self.skips:
            check_skip(skip)
        want = (len(self.stages), len(self.stages) - 1) if task.decoder else (0, 0)
        if (len(self.decoder), len(self.skips)) != want:
            raise ValueError(f"ArchConfig task={self.task!r} with {len(self.stages)} stages needs {want[0]} decoder "
                             f"blocks and {want[1]} skips; got {len(self.decoder)} and {len(self.skips)}")
        if task.decoder and self.head != DEFAULT_HEAD:
            raise ValueError(f"ArchConfig task={self.task!r} has no classifier head; head={self.head!r} must be "
                             f"{DEFAULT_HEAD!r}")

    # --- JSON ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, arch: Mapping[str, Any]) -> ArchConfig:
        """Parse and validate the JSON form (module docstring); one-line ``ValueError`` otherwise."""
        if isinstance(arch, ArchConfig):
            return arch
        if not isinstance(arch, Mapping):
            raise ValueError(f"ArchConfig must be a mapping, got {type(arch).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(arch) - set(valid)):
            raise ValueError(f"unknown ArchConfig key(s) {unknown}; valid: {sorted(valid)}")
        if missing := sorted({"backbone", "in_chans", "num_classes", "stages"} - set(arch)):
            raise ValueError(f"ArchConfig is missing key(s) {missing}; required: backbone, in_chans, num_classes, "
                             f"stages")
        stages = arch["stages"]
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
            raise ValueError(f"ArchConfig stages={stages!r} must be a list of dicts, one per stage")
        parsed = []
        for i, spec in enumerate(stages):
            try:
                parsed.append(StageConfig.from_dict(spec))
            except (TypeError, ValueError) as err:
                raise ValueError(f"stage {i}: {err}") from None
        decoder = arch.get("decoder", ())
        if isinstance(decoder, (str, bytes)) or not isinstance(decoder, Sequence):
            raise ValueError(f"ArchConfig decoder={decoder!r} must be a list of dicts, one per decoder block")
        blocks = []
        for j, spec in enumerate(decoder):
            try:
                blocks.append(spec if isinstance(spec, DecoderBlock) else DecoderBlock.from_dict(spec))
            except (TypeError, ValueError) as err:
                raise ValueError(f"decoder block {j}: {err}") from None
        extra = {"decoder": tuple(blocks)} if "decoder" in arch else {}
        skips = arch.get("skips", ())
        if "skips" in arch and not isinstance(skips, (str, bytes)) and isinstance(skips, Sequence):
            extra["skips"] = tuple(skips)
        return cls(**{**arch, "stages": tuple(parsed), **extra})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what ``arch.json`` holds); ``from_dict(a.to_dict()) == a``."""
        out: dict[str, Any] = {"backbone": self.backbone, "in_chans": self.in_chans, "num_classes": self.num_classes,
                               "small_input": self.small_input, "head": self.head,
                               "stages": [stage.to_dict() for stage in self.stages]}
        if self.backbone_kwargs:
            out["backbone_kwargs"] = dict(self.backbone_kwargs)
        if self.task != CLASSIFY:
            out.update(task=self.task, decoder=[block.to_dict() for block in self.decoder], skips=list(self.skips))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def params(self) -> dict[str, str]:
        """Flattened fields as MLflow params, one naming scheme: ``head``, ``s{i}.attn``, ``s{i}.reduction``, ...
        (stage fields only where attention is on; the backbone fields are the search's, on its parent run)."""
        out = {"head": self.head}
        for i, stage in enumerate(self.stages):
            out.update({f"s{i}.{key}": value for key, value in stage.params().items()})
        if self.task != CLASSIFY:  # decoder block j as d{j}.*, the skip of stage i as k{i}
            out["task"] = self.task
            for j, block in enumerate(self.decoder):
                out.update({f"d{j}.{key}": str(value) for key, value in block.to_dict().items()})
            out.update({f"k{i}": skip for i, skip in enumerate(self.skips)})
        return out

    # --- forms --------------------------------------------------------------------------------------------
    def plain(self) -> ArchConfig:
        """The same backbone with no attention anywhere and the default head: the control every search runs."""
        return dataclasses.replace(self, head=DEFAULT_HEAD, stages=tuple(StageConfig() for _ in self.stages),
                                   decoder=tuple(DecoderBlock() for _ in self.decoder),
                                   skips=tuple(DEFAULT_SKIP for _ in self.skips))

    @property
    def is_plain(self) -> bool:
        return (self.head == DEFAULT_HEAD and all(stage.is_none for stage in self.stages)
                and all(block.is_none for block in self.decoder) and all(s == DEFAULT_SKIP for s in self.skips))

    def canonical(self, *, depths: Sequence[int | None]) -> ArchConfig:
        """One spelling per computation (see :meth:`StageConfig.canonical`), given the backbone's blocks per stage
        (``backbones.canonical(arch)`` looks them up; a value type builds no model). ``depths`` of another length
        than ``stages`` are ignored."""
        depths = depths if len(depths) == len(self.stages) else [None] * len(self.stages)
        return dataclasses.replace(self, stages=tuple(s.canonical(depth=d) for s, d in zip(self.stages, depths)),
                                   decoder=tuple(block.canonical() for block in self.decoder))

    def __str__(self) -> str:
        """Short text of the stages and head, e.g. ``se/r8 | - | eca/k5@last | cbam/r16/k7 +attn_pool``."""
        text = " | ".join(str(stage) for stage in self.stages) + (
            f" +{self.head}" if self.head != DEFAULT_HEAD else "")
        if self.task != CLASSIFY:  # e.g. "... || dec - | scse | se/r4 | - || skips g - g"
            text += (" || dec " + " | ".join(str(block) for block in self.decoder)
                     + " || skips " + " ".join("g" if s == "gate" else "-" for s in self.skips))
        return text
