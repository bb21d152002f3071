"""The segmentation model: a U-Net whose encoder is ``backbones.build``'s timm model and whose decoder is
segmentation_models_pytorch's ``UnetDecoder`` (https://github.com/qubvel-org/segmentation_models.pytorch, 0.5+).

:class:`UNet` takes the timm model with its attention already placed per stage, prunes what comes after the last
stage (timm's ``prune_intermediate_layers``: classifier, final norm / conv head), reads the stage outputs with timm's
``forward_intermediates`` (any timm family that implements it and declares its stages in ``feature_info``) and runs
smp's decoder over ``[input, stage 0, ..., stage S-1]`` (smp drops the first entry; its last block upsamples to the
input size) and smp's ``SegmentationHead`` (a 3×3 conv to ``num_classes`` logits per pixel). Decoder and head are
initialised as smp's ``Unet`` initialises them. Output: ``(N, num_classes, H, W)`` for an ``(N, C, H, W)`` input.

Decoder widths are one rule, :func:`decoder_widths`: each block is as wide as the stage whose skip it merges (the
last, skipless block as wide as stage 0), so the decoder mirrors the encoder and stays light on a CPU.

smp is imported inside the functions that need it (``import backbones`` stays cheap, and ``backbones.standalone`` writes
:class:`UNet` out with its imports).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .attention import attention_call
from .calls import Call, Edit
from .decoder import SCSE, check_decoder_attention
from .gate import AttentionGate
from .placement import every_group_stages, stage_feature_indices

_DRY_RUN_SIZE = 32  # px; only channel counts are read (as build's dry run)


class DecoderStep(nn.Module):
    """One smp ``UnetDecoderBlock`` with its skip gate (``gate``: None = plain skip) and the attention after it
    (``attn``); the same call signature as the block, so smp's ``UnetDecoder.forward`` runs it unchanged."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.gate = None  # an AttentionGate(skip, gating signal) when the ArchConfig gates this skip
        self.attn = nn.Identity()

    def forward(self, feature_map: torch.Tensor, target_height: int, target_width: int,
                skip_connection: torch.Tensor | None = None) -> torch.Tensor:
        if self.gate is not None and skip_connection is not None:
            skip_connection = self.gate(skip_connection, feature_map)
        return self.attn(self.block(feature_map, target_height, target_width, skip_connection=skip_connection))


class UNet(nn.Module):
    """``encoder`` (a timm model; pruned here after its stage ``indices[-1]``) -> smp ``UnetDecoder`` -> smp
    ``SegmentationHead``.

    Args:
        encoder: the timm model with attention placed (``backbones.build`` of the ArchConfig's encoder part).
        indices: ``feature_info`` indices of the stages (``forward_intermediates(indices=...)``); with
            ``extra_blocks`` (MobileNetV2, whose stages are every block group) indices over ``[stem, *blocks]``.
        encoder_channels: output channels of each stage, in stage order.
        decoder_channels: output channels of each decoder block, coarsest first (one rule; see the module).
        in_chans: image channels; num_classes: logits per pixel (background included).
    """

    def __init__(self, encoder: nn.Module, *, indices: Sequence[int], encoder_channels: Sequence[int],
                 decoder_channels: Sequence[int], in_chans: int, num_classes: int, extra_blocks: bool = False) -> None:
        super().__init__()
        from segmentation_models_pytorch.base import SegmentationHead
        from segmentation_models_pytorch.base.initialization import initialize_decoder, initialize_head
        from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

        self.indices = list(indices)
        self.extra = {"extra_blocks": True} if extra_blocks else {}  # timm's keyword, passed only when used
        encoder.prune_intermediate_layers(self.indices, prune_norm=True, prune_head=True, **self.extra)
        self.encoder = encoder
        self.decoder = UnetDecoder(encoder_channels=[in_chans, *encoder_channels], decoder_channels=decoder_channels,
                                   n_blocks=len(decoder_channels), use_norm="batchnorm", attention_type=None,
                                   interpolation_mode="nearest")
        self.head = SegmentationHead(decoder_channels[-1], num_classes, kernel_size=3)
        initialize_decoder(self.decoder)
        initialize_head(self.head)
        for i, block in enumerate(self.decoder.blocks):
            self.decoder.blocks[i] = DecoderStep(block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder.forward_intermediates(x, indices=self.indices, intermediates_only=True, **self.extra)
        return self.head(self.decoder([x, *features]))


@torch.no_grad()
def _stage_outputs(model: nn.Module, *, indices: Sequence[int], in_chans: int, **extra: bool) -> list[torch.Tensor]:
    """The stage outputs of one eval-mode forward pass on zeros (no RNG draws, no BatchNorm updates)."""
    was_training = model.training
    try:
        x = torch.zeros(1, in_chans, _DRY_RUN_SIZE, _DRY_RUN_SIZE)
        return model.eval().forward_intermediates(x, indices=list(indices), intermediates_only=True, **extra)
    finally:
        model.train(was_training)


def decoder_widths(stage_channels: Sequence[int]) -> list[int]:
    """Output channels of the decoder blocks, coarsest first: block ``j`` as wide as the stage ``S - 2 - j`` whose
    skip it merges, the last (no skip) as wide as stage 0. E.g. stages (32, 64, 128, 256) -> (128, 64, 32, 32)."""
    widths = list(stage_channels[-2::-1])
    return widths + [stage_channels[0]]


def attach_unet(model: nn.Module, *, arch: Any, stages: Sequence[str]) -> tuple[nn.Module, list[Edit]]:
    """The segment task's top (``backbones.task``): wrap ``model`` (the timm model ``build`` made, attention placed)
    in a :class:`UNet` with ``arch``'s decoder attention and skip gates. Returns the UNet and the edits made, in
    order (``nest`` the UNet around the model, then ``set`` each gate and decoder attention module)."""
    if len(arch.decoder) != len(stages) or len(arch.skips) != len(stages) - 1:
        raise ValueError(f"backbone {arch.backbone!r} has {len(stages)} stages, so a U-Net has {len(stages)} decoder "
                         f"blocks and {len(stages) - 1} skips; ArchConfig gives {len(arch.decoder)} and "
                         f"{len(arch.skips)}")
    if not hasattr(model, "forward_intermediates"):
        raise ValueError(f"backbone {arch.backbone!r} lacks timm's forward_intermediates, which the U-Net reads "
                         f"its stage outputs with")
    extra = {"extra_blocks": True} if every_group_stages(model) else {}
    indices = list(range(1, len(stages) + 1)) if extra else stage_feature_indices(model)
    channels = [int(f.shape[1]) for f in _stage_outputs(model, indices=indices, in_chans=arch.in_chans, **extra)]
    widths = decoder_widths(channels)
    nest = Call(UNet, (), {"indices": tuple(indices), "encoder_channels": tuple(channels),
                           "decoder_channels": tuple(widths), "in_chans": arch.in_chans,
                           "num_classes": arch.num_classes, **extra})
    unet = UNet(model, **nest.kwargs)
    edits = [Edit("nest", "", nest)]
    count = len(widths)
    for j, spec in enumerate(arch.decoder):
        skip_stage = count - 2 - j  # the stage whose output block j merges (-1: the last block, no skip)
        skip_channels = channels[skip_stage] if skip_stage >= 0 else 0
        in_channels = channels[-1] if j == 0 else widths[j - 1]
        calls: dict[str, Call] = {}
        if skip_stage >= 0 and arch.skips[skip_stage] == "gate":
            calls["gate"] = Call(AttentionGate, (skip_channels, in_channels))
        try:
            calls.update(_attention_calls(spec, merged=in_channels + skip_channels if skip_channels else 0,
                                          out=widths[j]))
        except ValueError as err:
            raise ValueError(f"decoder block {j}: {err}") from None
        for name, call in calls.items():
            path = f"decoder.blocks.{j}.{name}"
            parent, _, child = path.rpartition(".")
            setattr(unet.get_submodule(parent), child, call.build())
            edits.append(Edit("set", path, call))
    return unet, edits


def _attention_calls(spec: Any, *, merged: int, out: int) -> dict[str, Call]:
    """Where a decoder block's attention goes (path under the DecoderStep -> call): scse as smp places it (on the
    concatenated input when there is a skip, ``merged`` channels, and on the output), any other type after the
    block at its ``out`` channels."""
    if spec.is_none:
        return {}
    if spec.attn != SCSE:
        check_decoder_attention(spec.attn, channels=out, **spec.knobs)
        return {"attn": attention_call(spec.attn, channels=out, **spec.knobs)}
    from segmentation_models_pytorch.base.modules import Attention

    check_decoder_attention(SCSE, channels=min(c for c in (merged, out) if c), **spec.knobs)
    calls = {"block.attention1": Call(Attention, (SCSE,), {"in_channels": merged, **spec.knobs})} if merged else {}
    return {**calls, "block.attention2": Call(Attention, (SCSE,), {"in_channels": out, **spec.knobs})}
