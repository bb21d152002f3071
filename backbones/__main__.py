"""``python -m backbones``: table of registered attention types with cost at 64 channels on a 32x32 map,
followed by the types left out and why.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv ops only, 1 MAC = 2 FLOPs;
elementwise gates and pooling are not counted), batch 1, eval mode.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .attention import ATTENTION, LEFT_OUT, make_attention

CHANNELS, SIZE = 64, 32  # probe: a 64-channel 32x32 feature map


def _cost(name: str) -> tuple[int, float]:
    module = make_attention(name, channels=CHANNELS).eval()
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
    print(f"\nleft out ({len(LEFT_OUT)}):")
    for name, reason in LEFT_OUT.items():
        print(f"{name:<10} {reason}")


if __name__ == "__main__":
    main()
