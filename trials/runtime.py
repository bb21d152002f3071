"""Inference runtimes the latency probe can time a model in (``ProbeConfig.runtime``, ``latency.runtime=``).

A runtime turns an eval-mode model and an example input into a zero-argument callable that runs one inference;
``trials.measure_latency`` times that callable. Eager PyTorch latency can differ several-fold from a deployment
runtime's (e.g. MobileNetV2 on a Raspberry Pi: 72.6 ms eager vs 10.9 ms ExecuTorch), so a search can rank
architectures by the runtime the user ships.

- ``torch``: the eager module under ``torch.inference_mode`` (the default).
- ``onnxruntime``: the model exported with ``torch.onnx.export(dynamo=True)`` (opset :data:`ONNX_OPSET`) and run by
  ONNX Runtime's CPU provider with the process's torch thread count as intra-op threads (CPU, fp32 only).
  https://onnxruntime.ai/docs/performance/tune-performance/threading.html
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

ONNX_OPSET = 18  # ONNX opset of every ONNX file this project writes (onnxruntime >= 1.14 runs it)
Runner = Callable[[], object]


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """The exporters print progress and log warnings about their internals; silence both for one export."""
    torch_log = logging.getLogger("torch")
    level = torch_log.level
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            torch_log.setLevel(level)


def export_onnx(model: nn.Module, *, example: torch.Tensor, path: str | Path) -> Path:
    """Write ``model`` (eval, CPU, fp32) as ONNX with input ``images`` (batch dimension dynamic) and output
    ``logits``; returns the path."""
    with quiet_export(), torch.no_grad():
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=ONNX_OPSET, input_names=["images"],
                                    output_names=["logits"], dynamic_shapes=({0: "batch"},))
        program.save(str(path))
    return Path(path)


def onnx_session(path: str | Path, *, threads: int):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _torch(model: nn.Module, x: torch.Tensor) -> Runner:
    def run() -> object:
        with torch.inference_mode():
            return model(x)
    return run


def _onnxruntime(model: nn.Module, x: torch.Tensor) -> Runner:
    if x.device.type != "cpu" or x.dtype != torch.float32:
        raise ValueError(f"latency runtime 'onnxruntime' times CPU fp32 models; got {x.device.type} {x.dtype}")
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, example=x.contiguous(), path=Path(folder) / "model.onnx")
        session = onnx_session(path, threads=torch.get_num_threads())  # the file is read into the session
    feed = {session.get_inputs()[0].name: x.contiguous().numpy()}
    return lambda: session.run(None, feed)


# name -> prepare(eval-mode model, example input) -> a callable running one inference
RUNTIMES: dict[str, Callable[[nn.Module, torch.Tensor], Runner]] = {"torch": _torch, "onnxruntime": _onnxruntime}
