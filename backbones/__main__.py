"""``python -m backbones``: table of registered attention types with cost at 64 channels on a 32x32 map,
then what a stage may hold besides one module (explicit blocks, a stack of two: ``StageConfig.then``) with example
stacks' costs, then the types left out and why.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv ops only, 1 MAC = 2 FLOPs;
elementwise gates and pooling are not counted), batch 1, eval mode.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .arch import StageConfig
from .attention import ATTENTION, LEFT_OUT
from .build import slot_call

CHANNELS, SIZE = 64, 32  # probe: a 64-channel 32x32 feature map
# Example stacks (first, then): CBAM's channel-then-spatial order from two registered types, and the same kind twice.
STACKS: tuple[StageConfig, ...] = (StageConfig("se", then={"attn": "spatial"}), StageConfig("eca", then={"attn": "eca"}),
                                   StageConfig("coord", then={"attn": "spatial"}))


def _cost(name: str | StageConfig) -> tuple[int, float]:
    spec = name if isinstance(name, StageConfig) else StageConfig(name)
    module = (slot_call(spec, channels=CHANNELS).build() if not spec.is_none else nn.Identity()).eval()
    params = sum(p.numel() for p in module.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, CHANNELS, SIZE, SIZE))
    return params, counter.get_total_flops() / 1e6


def main() -> None:
    """Print name, knobs, params, MFLOPs (default knobs) and paper for every registered type, then LEFT_OUT."""
    print(f"attention types at {CHANNELS} channels, {SIZE}x{SIZE} map, default knobs")
    print(f"{'name':<8} {'knobs':<22} {'params':>7} {'MFLOPs':>8}  paper")
    for name, kind in ATTENTION.items():
        params, mflops = _cost(name)
        knobs = ",".join(sorted(kind.knobs)) or "-"
        print(f"{name:<8} {knobs:<22} {params:>7} {mflops:>8.4f}  {kind.paper or '-'}")
    print("\nper stage (ArchConfig stage keys): position after_block | in_block | stage_end; blocks every | last | "
          "block indices, e.g. [0, 2]")
    print("stacks (key then: a second module of any type above, run on the first one's output at the same slot; "
          "depth 1-2):")
    for spec in STACKS:
        params, mflops = _cost(spec)
        print(f"{str(spec):<31} {params:>7} {mflops:>8.4f}")
    print(f"\nleft out ({len(LEFT_OUT)}):")
    for name, reason in LEFT_OUT.items():
        print(f"{name:<10} {reason}")


if __name__ == "__main__":
    main()
