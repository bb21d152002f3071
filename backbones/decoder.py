"""What a segmentation ArchConfig adds: one ``DecoderBlock`` per U-Net decoder block and one skip mode per skip.

Value types and checks only (no model is built here; ``backbones.unet`` builds). The U-Net is
``backbones.unet.UNet``: the encoder is ``backbones.build``'s timm model (attention per stage as for a classifier),
the decoder is segmentation_models_pytorch's ``UnetDecoder`` over the stage outputs.

- Decoder blocks are listed coarsest first, as smp runs them: block ``j`` upsamples to the size of stage
  ``S - 2 - j``'s output and concatenates it (the skip); the last block (``j = S - 1``) upsamples to the input size
  and has no skip. There is one block per encoder stage (``S`` = ``len(arch.stages)``).
- ``DecoderBlock.attn``: ``none``, any registered attention type (``backbones.ATTENTION``; one module on the block's
  output, at the block's width), or ``scse``: smp's concurrent spatial and channel squeeze-and-excitation (Roy et al.
  2018, https://arxiv.org/abs/1803.02579) where smp's ``decoder_attention_type="scse"`` puts it: on the concatenated
  input (blocks with a skip) and on the block's output. Knobs as in ``backbones.attention`` (scse: ``reduction``).
- Skips are listed by the encoder stage they come from (``skips[i]``: stage ``i``'s output, ``i = 0 .. S - 2``):
  ``none`` (smp's plain concatenation) or ``gate`` (``backbones.gate.AttentionGate``, Attention U-Net's additive
  gate, with the decoder's incoming feature map as the gating signal).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .attention import ATTENTION, KNOB_ORDER, check_attention, reduction_fits

SCSE = "scse"  # the decoder attention type segmentation_models_pytorch provides (its decoder_attention_type)
SCSE_PAPER = "https://arxiv.org/abs/1803.02579"
SCSE_KNOBS = frozenset({"reduction"})
SKIPS: dict[str, str] = {  # skip mode -> paper ("" = none)
    "none": "",
    "gate": "https://arxiv.org/abs/1804.03999",
}
DEFAULT_SKIP = "none"
_CHANNELS_UNKNOWN = 1 << 30  # check names and knob values before the real widths are known (build checks those)


def decoder_attention_types() -> list[str]:
    """Every type a decoder block may take: the attention registry's and ``scse``."""
    return [*ATTENTION, SCSE]


def decoder_knobs(name: str) -> frozenset[str]:
    """The knobs decoder attention type ``name`` takes (``none``: none); a search space draws only these."""
    if name == "none":
        return frozenset()
    return SCSE_KNOBS if name == SCSE else frozenset(ATTENTION[name].knobs)


def check_decoder_attention(name: str, *, channels: int, **knobs: object) -> None:
    """One-line ``ValueError`` unless ``name`` with ``knobs`` is valid at ``channels`` (the smaller width it sees)."""
    if name != SCSE:
        if name not in ATTENTION:
            raise ValueError(f"unknown decoder attention type {name!r}; valid types: "
                             f"{', '.join(sorted(decoder_attention_types()))}")
        check_attention(name, channels=channels, **knobs)
        return
    for knob, value in knobs.items():
        if knob not in SCSE_KNOBS:
            raise ValueError(f"attention {SCSE!r} does not take knob {knob!r}={value!r}; it takes: reduction")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"attention {SCSE!r}: {knob}={value!r} must be an int >= 1")
    r = knobs.get("reduction", 16)
    if not reduction_fits(channels, r):
        raise ValueError(f"attention {SCSE!r}: reduction={r} invalid for {channels} channels; "
                         f"need 1 <= reduction <= {channels}")


def check_skip(mode: object) -> str:
    """``mode`` if it is a skip mode, else a one-line ``ValueError`` naming the choices."""
    if mode not in SKIPS:
        raise ValueError(f"unknown skip {mode!r}; valid: {', '.join(SKIPS)}")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class DecoderBlock:
    """The attention of one U-Net decoder block (see the module docstring for where it goes)."""

    attn: str = "none"  # "none", a name in backbones.ATTENTION, or "scse"
    reduction: int | None = None  # hidden width = channels // reduction (types that take it)
    kernel_size: int | None = None  # odd, pixels (types that take it)

    def __post_init__(self) -> None:
        check_decoder_attention(self.attn, channels=_CHANNELS_UNKNOWN, **self.knobs)

    @property
    def knobs(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in KNOB_ORDER if getattr(self, name) is not None}

    @property
    def is_none(self) -> bool:
        return self.attn == "none"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> DecoderBlock:
        if not isinstance(spec, Mapping) or "attn" not in spec:
            raise ValueError(f"{spec!r} must be a dict with an 'attn' key")
        valid = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(spec) - set(valid)):
            raise ValueError(f"unknown key(s) {unknown}; valid: {valid}")
        return cls(**spec)

    def to_dict(self) -> dict[str, Any]:
        return {"attn": self.attn, **self.knobs}

    def canonical(self) -> DecoderBlock:
        """``DecoderBlock()`` for no attention; otherwise itself (knobs a type does not take cannot be set)."""
        return DecoderBlock() if self.is_none else self

    def __str__(self) -> str:
        """``-``, ``scse``, ``se/r8``, ``eca/k5``."""
        if self.is_none:
            return "-"
        return self.attn + "".join(f"/{k[0]}{v}" for k, v in self.knobs.items())
