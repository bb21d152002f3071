"""The deployable files of an export, each checked against the eager model at export time.

- ``model.onnx``: ``torch.onnx.export`` (the dynamo exporter), opset :data:`ONNX_OPSET`, batch dimension dynamic;
  checked by running it in ONNX Runtime's CPU provider.
- ``model.pt2``: a ``torch.export`` program with a dynamic batch dimension (``torch.export.save``); checked after
  ``torch.export.load``.

A check feeds the same images to the eager model and to the artefact and compares the logits: the largest absolute
difference against :data:`TOLERANCE`. Fails loudly (``ExportCheckFailed``) rather than writing an artefact that
computes something else.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trials.runtime import ONNX_OPSET, export_onnx, onnx_session, quiet_export

MAX_BATCH = 4096  # the upper bound of torch.export's dynamic batch dimension
TOLERANCE = 1e-4  # max abs difference of the logits (fp32) an artefact may have to the eager model
ONNX_FILE, PT2_FILE = "model.onnx", "model.pt2"


class ExportCheckFailed(RuntimeError):
    """An exported artefact does not reproduce the eager model's logits within TOLERANCE."""


@dataclass(frozen=True)
class Check:
    """One artefact checked against the eager model on ``images`` inputs."""

    artefact: str  # file name (or "module" for the standalone Python module)
    how: str  # what loaded and ran it
    images: int
    max_abs_diff: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= TOLERANCE


def check(*, artefact: str, how: str, expected: torch.Tensor, got: torch.Tensor | np.ndarray) -> Check:
    """Compare logits; raise :class:`ExportCheckFailed` past TOLERANCE."""
    got = torch.as_tensor(np.asarray(got))
    result = Check(artefact=artefact, how=how, images=len(expected),
                   max_abs_diff=float((got.float() - expected.float()).abs().max()))
    if not result.passed:
        raise ExportCheckFailed(f"{artefact} ({how}) differs from the eager model by {result.max_abs_diff:.3g} "
                                f"(tolerance {TOLERANCE:g}) on {result.images} images")
    return result


def write_onnx(model: nn.Module, *, images: torch.Tensor, path: Path) -> Check:
    """Export ``model`` (eval, fp32, CPU) to ONNX at ``path`` and check it in ONNX Runtime on ``images``."""
    import onnxruntime as ort

    export_onnx(model, example=images[:2], path=path)
    with torch.no_grad():
        expected = model(images)
    session = onnx_session(path, threads=torch.get_num_threads())
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    return check(artefact=path.name, how=f"onnxruntime {ort.__version__} CPUExecutionProvider", expected=expected,
                 got=got)


def write_pt2(model: nn.Module, *, images: torch.Tensor, path: Path) -> Check:
    """``torch.export`` ``model`` with a dynamic batch to ``path``; reload it and check it on ``images``."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with quiet_export(), torch.no_grad():
        program = torch.export.export(model, (images[:2],), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
        expected = model(images)
        got = torch.export.load(str(path)).module()(images)
    return check(artefact=path.name, how=f"torch.export.load (torch {torch.__version__})", expected=expected, got=got)
