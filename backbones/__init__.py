"""ArchConfig, the attention registry, stage placement and ``build(arch)`` for the attention-placement NAS.

``python -m backbones`` prints the registered attention types with their knobs, params and FLOPs.
"""
from .arch import ArchConfig, StageConfig
from .attention import ATTENTION, KNOB_CHOICES, AttentionKind, make_attention
from .build import SUPPORTED_BACKBONES, build, stage_channels, stage_depths, stage_positions
from .head import HEADS, AttentionPool2d
from .placement import BLOCKS, POSITIONS

__all__ = [
    "ATTENTION", "ArchConfig", "AttentionKind", "AttentionPool2d", "BLOCKS", "HEADS", "KNOB_CHOICES", "POSITIONS",
    "SUPPORTED_BACKBONES", "StageConfig", "build", "make_attention", "stage_channels", "stage_depths",
    "stage_positions",
]
