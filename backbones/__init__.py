"""ArchConfig, the attention registry, stage placement and ``build(arch)`` for the attention-placement NAS;
with ``task: segment`` a U-Net (smp's decoder, decoder attention, Attention U-Net skip gates) over the same encoder.

``python -m backbones`` prints the registered attention types with their knobs, params and FLOPs.
"""
from .arch import DEFAULT_BLOCKS, DEFAULT_HEAD, DEFAULT_POSITION, NONE, ArchConfig, StageConfig, Then
from .attention import ATTENTION, KNOB_CHOICES, KNOBS, AttentionKind, make_attention, reduction_fits
from .build import SUPPORTED_BACKBONES, build, canonical, slot_call, stage_channels, stage_depths, stage_positions
from .decoder import DEFAULT_SKIP, SCSE, SKIPS, DecoderBlock, decoder_attention_types, decoder_knobs
from .gate import AttentionGate
from .head import HEADS, AttentionPool2d
from .placement import (BLOCKS, POSITIONS, Blocks, block_indices, blocks_text, check_blocks, named_blocks,
                        takes_blocks)
from .task import MODEL_TASKS
from .unet import UNet

__all__ = [
    "ATTENTION", "ArchConfig", "AttentionGate", "AttentionKind", "AttentionPool2d", "BLOCKS", "Blocks", "DEFAULT_BLOCKS",
    "DEFAULT_HEAD", "DEFAULT_POSITION", "DEFAULT_SKIP", "DecoderBlock", "HEADS", "KNOBS", "KNOB_CHOICES", "MODEL_TASKS", "NONE",
    "POSITIONS", "SCSE", "SKIPS", "SUPPORTED_BACKBONES", "StageConfig", "Then", "UNet", "block_indices",
    "blocks_text", "build", "canonical", "check_blocks",
    "decoder_attention_types", "decoder_knobs", "make_attention", "named_blocks", "reduction_fits", "slot_call", "stage_channels", "stage_depths",
    "stage_positions", "takes_blocks",
]
