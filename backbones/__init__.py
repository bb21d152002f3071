"""ArchConfig, the attention registry, stage placement and ``build(arch)`` for the attention-placement NAS.

``python -m backbones`` prints the registered attention types with their knobs, params and FLOPs.
"""
from .arch import DEFAULT_BLOCKS, DEFAULT_HEAD, DEFAULT_POSITION, NONE, ArchConfig, StageConfig
from .attention import ATTENTION, KNOB_CHOICES, KNOBS, AttentionKind, make_attention, reduction_fits
from .build import SUPPORTED_BACKBONES, build, canonical, stage_channels, stage_depths, stage_positions
from .head import HEADS, AttentionPool2d
from .placement import BLOCKS, POSITIONS, takes_blocks

__all__ = [
    "ATTENTION", "ArchConfig", "AttentionKind", "AttentionPool2d", "BLOCKS", "DEFAULT_BLOCKS", "DEFAULT_HEAD",
    "DEFAULT_POSITION", "HEADS", "KNOBS", "KNOB_CHOICES", "NONE", "POSITIONS", "SUPPORTED_BACKBONES", "StageConfig",
    "build", "canonical", "make_attention", "reduction_fits", "stage_channels", "stage_depths", "stage_positions",
    "takes_blocks",
]
