"""Registry of attention modules: name -> how to build it and which knobs it honours.

Every module is built as ``make(channels, **knobs)`` and maps ``(N, C, H, W) -> (N, C, H, W)``.
Most wrap ``timm.layers`` classes (https://github.com/huggingface/pytorch-image-models); the rest
(psa, sa, bam, triplet, spatial) are written in ``backbones.modules``. Types considered and not
registered are listed, with the reason, in ``LEFT_OUT``. Two registered types are conv replacements
rather than gates (splat, lambda: their output is a new kxk-context feature map with no skip path);
they are kept because they are shape-preserving C -> C on any map size with honest knobs.

Knob semantics (the same for every type that declares the knob):

- ``reduction`` r (int >= 1): the bottleneck width is exactly ``channels // r``. We pass
  ``rd_channels`` explicitly because timm's ``make_divisible`` rounds (to 8 by default, and to the
  nearest integer otherwise), which would make distinct ratios build identical modules.
- ``kernel_size`` k (odd int >= 1): the size of the type's conv kernel (ECA's 1-D channel conv,
  CBAM's and triplet's spatial convs, ELA's 1-D depthwise convs, SplitAttn's grouped conv). ECA is
  built without ``channels`` so timm does not replace k with its channel-adaptive choice.

A type declares a knob only if every value of it changes the module (param count or a kernel shape);
``tests/backbones`` checks that for every value in ``KNOB_CHOICES``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from timm.layers import (
    CecaModule, ConvMlp, EcaModule, EffectiveSEModule, GatherExcite, GlobalContext, NonLocalAttn, SEModule, SplitAttn,
)
from timm.layers.cbam import CbamModule, LightCbamModule  # not re-exported by timm.layers
from timm.layers.coord_attn import CoordAttn, EfficientLocalAttn, SimpleCoordAttn
from timm.layers.lambda_layer import LambdaLayer
from torch import nn

from .calls import Call
from .modules import (
    BottleneckAttention, PointwiseSpatialAttention, SelfAttention2d, SpatialGate, TripletAttention,
)

KNOB_ORDER: tuple[str, ...] = ("reduction", "kernel_size")  # the knob names, in the order ArchConfig writes them
KNOBS: frozenset[str] = frozenset(KNOB_ORDER)
# Values the project offers for each knob (a search space may use a subset).
KNOB_CHOICES: Mapping[str, tuple[int, ...]] = {"reduction": (4, 8, 16, 32), "kernel_size": (3, 5, 7)}


@dataclass(frozen=True)
class AttentionKind:
    """One registered attention type; ``call(channels, **knobs)`` is the constructor call of a shape-preserving
    module (:class:`backbones.calls.Call`: built by ``make``, written out as source by an export)."""

    name: str
    call: Callable[..., Call]
    knobs: frozenset[str]  # subset of KNOBS that really changes the module
    paper: str  # URL
    channel_multiple: int = 1  # channels must be a multiple of this (grouped convs, attention heads)

    def make(self, channels: int, **knobs: int) -> nn.Module:
        return self.call(channels, **knobs).build()


# --- constructor calls: (channels, **knobs) -> Call -------------------------------------------------

def _none(channels: int) -> Call:
    return Call(nn.Identity)


def _plain(cls: type[nn.Module], channels: int, **knobs: int) -> Call:
    return Call(cls, (channels,), dict(knobs))


def _reduced(cls: type[nn.Module], channels: int, *, reduction: int = 16, **kw) -> Call:
    return Call(cls, (channels,), {"rd_channels": channels // reduction, **kw})


def _eca(channels: int, *, kernel_size: int = 3) -> Call:
    # channels=None: otherwise timm derives kernel_size from channels and ignores ours.
    return Call(EcaModule, (None,), {"kernel_size": kernel_size})


def _ceca(channels: int, *, kernel_size: int = 3) -> Call:
    return Call(CecaModule, (None,), {"kernel_size": kernel_size})


def _cbam(cls: type[nn.Module], channels: int, *, reduction: int = 16, kernel_size: int = 7) -> Call:
    return Call(cls, (channels,), {"rd_channels": channels // reduction, "spatial_kernel_size": kernel_size})


def _ela(channels: int, *, kernel_size: int = 7) -> Call:
    return Call(EfficientLocalAttn, (channels,), {"kernel_size": kernel_size})


def _ecam(channels: int, *, reduction: int = 8) -> Call:
    # timm's MLP variant of ECA; with channels given, timm picks the 1-D kernel from channels (so no k knob).
    return Call(EcaModule, (channels,), {"use_mlp": True, "rd_channels": channels // reduction})


def _ge(channels: int, *, reduction: int = 16) -> Call:
    # Gather: parameter-free average over extent 8 (GE-theta-minus); excite: timm's 1x1 MLP. timm 1.0.31 builds
    # that MLP with ``*dd`` (dict keys as positional args) and crashes, so we build it ourselves.
    return Call(GatherExcite, (channels,), {"extent": 8, "use_mlp": False},
                children={"mlp": Call(ConvMlp, (channels, channels // reduction), {"act_layer": nn.ReLU})})


def _splat(channels: int, *, reduction: int = 4, kernel_size: int = 3) -> Call:
    # A radix-2 split-attention conv (replaces a kxk conv in ResNeSt); shape-preserving, no BatchNorm by default.
    return Call(SplitAttn, (channels, channels), {"kernel_size": kernel_size, "rd_channels": channels // reduction})


def _lambda(channels: int, *, kernel_size: int = 9) -> Call:
    # kernel_size is the local context size r of the position lambdas (a (r, r) conv); 4 heads of values.
    return Call(LambdaLayer, (channels, channels), {"r": kernel_size})


def _kind(name: str, call: Callable[..., Call], knobs: set[str], paper: str, multiple: int = 1) -> AttentionKind:
    return AttentionKind(name=name, call=call, knobs=frozenset(knobs), paper=paper, channel_multiple=multiple)


_R, _K = "reduction", "kernel_size"
ATTENTION: dict[str, AttentionKind] = {k.name: k for k in (
    _kind("none", _none, set(), ""),
    _kind("se", partial(_reduced, SEModule), {_R}, "https://arxiv.org/abs/1709.01507"),
    _kind("ese", partial(_plain, EffectiveSEModule), set(), "https://arxiv.org/abs/1911.06667"),
    _kind("eca", _eca, {_K}, "https://arxiv.org/abs/1910.03151"),
    _kind("ceca", _ceca, {_K}, "https://arxiv.org/abs/1910.03151"),  # timm variant: circular padding
    _kind("cbam", partial(_cbam, CbamModule), {_R, _K}, "https://arxiv.org/abs/1807.06521"),
    _kind("lcbam", partial(_cbam, LightCbamModule), {_R, _K}, "https://arxiv.org/abs/1807.06521"),
    _kind("coord", partial(_reduced, CoordAttn), {_R}, "https://arxiv.org/abs/2103.02907"),
    _kind("scoord", partial(_reduced, SimpleCoordAttn), {_R}, "https://arxiv.org/abs/2103.02907"),
    _kind("ela", _ela, {_K}, "https://arxiv.org/abs/2403.01123"),
    _kind("gc", partial(_reduced, GlobalContext), {_R}, "https://arxiv.org/abs/1904.11492"),
    _kind("gca", partial(_reduced, GlobalContext, fuse_add=True, fuse_scale=False), {_R},
          "https://arxiv.org/abs/1904.11492"),
    _kind("nl", partial(_reduced, NonLocalAttn), {_R}, "https://arxiv.org/abs/1711.07971"),
    _kind("ecam", _ecam, {_R}, "https://arxiv.org/abs/1910.03151"),  # timm experiment: ECA with an MLP
    _kind("ge", _ge, {_R}, "https://arxiv.org/abs/1810.12348"),
    _kind("splat", _splat, {_R, _K}, "https://arxiv.org/abs/2004.08955", multiple=2),  # radix-2 grouped conv
    _kind("lambda", _lambda, {_K}, "https://arxiv.org/abs/2102.08602", multiple=4),  # 4 heads
    _kind("psa", partial(_plain, PointwiseSpatialAttention), {_R}, "https://hszhao.github.io/papers/eccv18_psanet.pdf"),
    _kind("sa", partial(_plain, SelfAttention2d), {_R}, "https://arxiv.org/abs/1805.08318"),
    _kind("bam", partial(_plain, BottleneckAttention), {_R}, "https://arxiv.org/abs/1807.06514"),
    _kind("triplet", partial(_plain, TripletAttention), {_K}, "https://arxiv.org/abs/2010.03045"),
    _kind("spatial", partial(_plain, SpatialGate), {_K}, "https://arxiv.org/abs/1807.06521"),  # CBAM's spatial half
)}

# Types considered and not registered (name -> why); ``python -m backbones`` prints this list.
LEFT_OUT: dict[str, str] = {
    "bat": "timm BatNonLocalAttn needs H and W divisible by block_size (7 by default), so it breaks on most "
           "stage sizes; block_size=1 runs anywhere but makes the bilinear transform an identity",
    "sk": "timm SelectiveKernel BatchNorms the pooled (N, C', 1, 1) descriptor, so it cannot train at batch 1 "
          "on any map size (a batch of one, e.g. a last partial batch, crashes)",
    "halo": "timm HaloAttn needs H and W divisible by its block size (8); fails on 1x1 to 7x7 maps",
    "bottleneck": "timm BottleneckAttn needs the feature size at construction (relative position table) and "
                  "asserts the input matches it; the registry builds from channels only",
    "strip": "timm StripAttn (strip pooling) came in a timm release after this registry was built and measured; "
             "not registered yet, so no search draws a type that no contract test or benchmark has covered",
}


def check_attention(name: str, *, channels: int, **knobs: object) -> None:
    """Raise a one-line ``ValueError`` if ``make_attention(name, channels=channels, **knobs)`` is invalid.

    Builds nothing, so it is safe to call before any module (or RNG draw) is made.
    """
    kind = ATTENTION.get(name)
    if kind is None:
        raise ValueError(f"unknown attention type {name!r}; valid types: {', '.join(sorted(ATTENTION))}")
    for knob, value in knobs.items():
        if knob not in kind.knobs:
            takes = ", ".join(sorted(kind.knobs)) or "no knobs"
            raise ValueError(f"attention {name!r} does not take knob {knob!r}={value!r}; it takes: {takes}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"attention {name!r}: {knob}={value!r} must be an int")
    r = knobs.get("reduction")
    if r is not None and r < 1:
        raise ValueError(f"reduction={r} must be >= 1 (hidden width = channels // reduction)")
    k = knobs.get("kernel_size")
    if k is not None and (k < 1 or k % 2 == 0):
        raise ValueError(f"kernel_size={k} must be a positive odd integer (e.g. 3, 5, 7)")
    if channels % kind.channel_multiple:
        raise ValueError(f"attention {name!r} needs channels divisible by {kind.channel_multiple}; got {channels}")
    if r is not None and not reduction_fits(channels, r):
        raise ValueError(f"attention {name!r}: reduction={r} invalid for {channels} channels; "
                         f"need 1 <= reduction <= {channels}")


def reduction_fits(channels: int, reduction: int) -> bool:
    """Whether reduction ratio ``reduction`` leaves at least one channel of ``channels`` (hidden width
    ``channels // reduction``): the one home of that rule (spaces check it before training, build on use)."""
    return channels // reduction >= 1


def make_attention(name: str, *, channels: int, **knobs: int) -> nn.Module:
    """Build the registered attention type ``name`` for a ``channels``-wide feature map.

    Omitted knobs take the type's default (reduction 16 for most, 8 for sa/ecam, 4 for psa/splat; kernel_size 3
    for ECA/SplitAttn, 7 for CBAM/ELA/triplet/spatial, 9 for lambda).
    Raises a one-line ``ValueError`` for an unknown name, channels not a multiple of the type's
    ``channel_multiple``, a knob the type does not take, a reduction with ``channels // reduction < 1``
    or an even / non-positive kernel size.
    """
    return attention_call(name, channels=channels, **knobs).build()


def attention_call(name: str, *, channels: int, **knobs: int) -> Call:
    """The checked constructor call :func:`make_attention` builds (what an export writes out as source)."""
    check_attention(name, channels=channels, **knobs)
    return ATTENTION[name].call(channels, **knobs)
