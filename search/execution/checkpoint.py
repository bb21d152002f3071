"""A trained trial on disk: weights (safetensors), its ArchConfig and final metrics (JSON), a reference input/output pair.

The reference pair lets anyone who rebuilds the model from the ArchConfig check that they got the trial's model:
same input, same output (CPU, float32, eval mode). No pickles anywhere: safetensors and JSON only.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file, save_model
from torch import nn

WEIGHTS = "weights.safetensors"
REFERENCE = "reference.safetensors"
ARCH = "arch.json"
METRICS = "metrics.json"  # the final epoch's metrics, so a resumed search can re-report a finished trial
_REFERENCE_BATCH = 2  # images in the reference input
_REFERENCE_SEED = 1234  # seed of the reference input (standard normal, i.e. already "normalised" pixels)


def save_checkpoint(folder: str | Path, *, model: nn.Module, arch: Mapping[str, Any],
                    input_shape: tuple[int, ...], metrics: Mapping[str, float]) -> None:
    """Write ``weights.safetensors``, ``arch.json``, ``metrics.json`` and ``reference.safetensors`` into ``folder``."""
    folder = Path(folder)
    cpu_model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format)
    cpu_model.eval()
    save_model(cpu_model, str(folder / WEIGHTS))
    (folder / ARCH).write_text(json.dumps(arch, indent=2, sort_keys=True))
    (folder / METRICS).write_text(json.dumps(dict(metrics), indent=2, sort_keys=True))
    generator = torch.Generator().manual_seed(_REFERENCE_SEED)
    inputs = torch.randn((_REFERENCE_BATCH, *input_shape), generator=generator)
    with torch.inference_mode():
        outputs = cpu_model(inputs)
    save_file({"input": inputs.contiguous(), "output": outputs.contiguous()}, str(folder / REFERENCE))


def load_reference(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (input, output) pair a checkpoint was saved with."""
    tensors = load_file(str(path))
    return tensors["input"], tensors["output"]


def load_metrics(folder: str | Path) -> dict[str, float] | None:
    """The final metrics a checkpoint was saved with, or None when ``folder`` has none."""
    path = Path(folder) / METRICS
    return json.loads(path.read_text()) if path.is_file() else None
