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

import contextlib
import io
import logging
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ONNX_OPSET = 18  # ONNX opset of model.onnx (onnxruntime >= 1.14 runs it)
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


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warn about internals; the export prints its own one-line results."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            torch_log.setLevel(level)


def write_onnx(model: nn.Module, *, images: torch.Tensor, path: Path) -> Check:
    """Export ``model`` (eval, fp32, CPU) to ONNX at ``path`` and check it in ONNX Runtime on ``images``."""
    import onnxruntime as ort

    with _quiet(), torch.no_grad():
        program = torch.onnx.export(model, (images[:2],), dynamo=True, opset_version=ONNX_OPSET,
                                    input_names=["images"], output_names=["logits"],
                                    dynamic_shapes=({0: "batch"},))
        program.save(str(path))
        expected = model(images)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    return check(artefact=path.name, how=f"onnxruntime {ort.__version__} CPUExecutionProvider", expected=expected,
                 got=got)


def write_pt2(model: nn.Module, *, images: torch.Tensor, path: Path) -> Check:
    """``torch.export`` ``model`` with a dynamic batch to ``path``; reload it and check it on ``images``."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with _quiet(), torch.no_grad():
        program = torch.export.export(model, (images[:2],), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
        expected = model(images)
        got = torch.export.load(str(path)).module()(images)
    return check(artefact=path.name, how=f"torch.export.load (torch {torch.__version__})", expected=expected, got=got)


def onnx_latency_ms(path: Path, *, input_shape: tuple[int, ...], threads: int, runs: int = 30,
                    warmup: int = 10) -> float:
    """Median wall time (ms) of one batch-1 ``model.onnx`` inference in ONNX Runtime's CPU provider with
    ``threads`` intra-op threads (the probe's: ``trials.measure_latency`` at the same batch and threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, *input_shape), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
