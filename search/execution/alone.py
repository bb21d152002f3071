"""Latency measured with nothing else of the search running: the plain backbone's reference at search start and the
confirmed architectures after the confirmation (call it while no trial trains: before Ray starts or after it ends)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from backbones import ArchConfig, build
from trials import ProbeConfig, measure_latency, resolve_device
from search.outcomes import LATENCY_MS


def measure_alone(archs: Mapping[str, ArchConfig], *, probe: ProbeConfig, input_shape: tuple[int, int, int],
                  device: str, threads: int) -> dict[str, float]:
    """Median batch-1 latency (ms) of each architecture (name -> ArchConfig), measured one after another in this
    process with the trials' thread count."""
    torch.set_num_threads(threads)
    where = resolve_device(device)
    return {name: measure_latency(build(arch).to(where), probe, input_shape=input_shape, device=where)[LATENCY_MS]
            for name, arch in archs.items()}
