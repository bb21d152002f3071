"""Measurements taken before training: latency, parameter count, FLOPs, and which device did it.

Each probe switches the model to eval mode and restores every submodule's train/eval flag afterwards.
Latency can be taken in a deployment precision and layout (`PRECISIONS`, channels_last); then it is
measured on a converted copy, so the model itself is never changed.
"""

from __future__ import annotations

import contextlib
import copy
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trials.runtime import RUNTIMES

# Deployment precisions for the latency probe: name -> dtype of the weights and the input of the timed copy.
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# The smallest valid value of each integer setting of ProbeConfig (the command line's ranges come from here too).
PROBE_MINIMUMS: dict[str, int] = {"runs": 1, "warmup": 0, "batch": 0}


@dataclass(frozen=True)
class ProbeConfig:
    """How the latency probe times a model: the one home of these defaults and their checks."""

    runs: int = 30  # timed forward passes per batch size; latency_ms is their median
    warmup: int = 10  # untimed forward passes first (allocator, cudnn autotune, caches)
    batch: int = 32  # images per pass of the throughput latency latency_b{N}_ms; 0 (or 1) = not measured
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" (`PRECISIONS`): deployment precision
    channels_last: bool = False  # time NHWC on CPU too (on CUDA run_trial times NHWC anyway, as in training)
    runtime: str = "torch"  # "torch" | "onnxruntime" (`trials.runtime.RUNTIMES`): what runs the timed inferences

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown latency precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown latency runtime {self.runtime!r}; valid: {', '.join(RUNTIMES)}")
        if self.runtime == "onnxruntime" and self.precision != "fp32":
            raise ValueError(f"latency runtime 'onnxruntime' times fp32 models; got precision {self.precision!r}")
        for name, minimum in PROBE_MINIMUMS.items():
            if getattr(self, name) < minimum:
                raise ValueError(f"latency {name}={getattr(self, name)} must be >= {minimum}"
                                 + (" (0 = no throughput latency)" if name == "batch" else ""))

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes to time: 1, then `batch` unless it is 0 or 1."""
        return (1, self.batch) if self.batch > 1 else (1,)


def latency_keys(batch_size: int) -> tuple[str, str]:
    """Metric names (median, IQR) for a batch size: latency_ms / latency_iqr_ms at batch 1, else latency_b{N}_ms /
    latency_b{N}_iqr_ms, so a name never hides its batch size."""
    if batch_size == 1:
        return "latency_ms", "latency_iqr_ms"
    return f"latency_b{batch_size}_ms", f"latency_b{batch_size}_iqr_ms"


def relative_latency_key(batch_size: int) -> str:
    """Metric name of the latency relative to a reference model: latency_rel at batch 1, else latency_b{N}_rel."""
    return "latency_rel" if batch_size == 1 else f"latency_b{batch_size}_rel"


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block; each submodule's own `training` flag is put back afterwards."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes.items():
            module.training = training


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_channels_last(model: nn.Module) -> bool:
    return any(
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in model.parameters()
    )


def _example_input(model: nn.Module, input_shape: tuple[int, int, int], batch_size: int, device) -> torch.Tensor:
    dtype = next(model.parameters(), torch.empty(0)).dtype  # the model's precision (fp32 unless converted)
    x = torch.randn(batch_size, *input_shape, device=device, dtype=dtype)
    # match the model's layout so latency does not include a layout conversion
    return x.contiguous(memory_format=torch.channels_last) if _is_channels_last(model) else x


def _deployed(model: nn.Module, probe: ProbeConfig) -> nn.Module:
    """`model` itself when fp32 and no layout change is asked for; otherwise a converted copy."""
    dtype = PRECISIONS[probe.precision]
    if dtype == torch.float32 and (not probe.channels_last or _is_channels_last(model)):
        return model
    clone = copy.deepcopy(model).to(dtype=dtype)
    return clone.to(memory_format=torch.channels_last) if probe.channels_last else clone


def measure_latency(
    model: nn.Module,
    probe: ProbeConfig = ProbeConfig(),
    *,
    input_shape: tuple[int, int, int],
    device: torch.device | str,
    batch_size: int = 1,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """Forward-pass wall time in milliseconds: median over `probe.runs` timed calls after `probe.warmup` untimed ones.

    probe.runtime: what runs each inference (`trials.runtime.RUNTIMES`: eager torch, or the model exported to ONNX
    and run by ONNX Runtime, the export untimed).
    input_shape: (C, H, W). The model must already be on `device`. Eval mode, `torch.inference_mode`, no
    autocast; on CUDA every call is bracketed by `torch.cuda.synchronize`. probe.precision: other than fp32,
    weights and input are cast to it (on a copy). probe.channels_last: time the model in NHWC (on a copy); False
    keeps the model's own layout. The input always follows the timed model's layout. `probe.batch` is not read:
    `batch_size` says which batch this call times (the caller loops over `probe.batch_sizes`).
    Returns {median key: ms, IQR key: 75th − 25th percentile in ms}, keys from `latency_keys(batch_size)`:
    latency_ms / latency_iqr_ms at batch 1, latency_b{N}_ms / latency_b{N}_iqr_ms at batch N.
    reference: another model on `device` (e.g. the plain backbone); each timed pass of `model` is then followed by
    one of `reference` under the same conditions, and the result also has ``relative_latency_key(batch_size)``:
    median(model) / median(reference), dimensionless. On a shared machine whose speed drifts (other load, clock
    changes) the ratio repeats far better than the milliseconds do (BENCHMARKS.md, section 3).
    """
    device = torch.device(device)
    models = [_deployed(m, probe) for m in ([model] if reference is None else [model, reference])]
    x = _example_input(models[0], input_shape, batch_size, device)
    with contextlib.ExitStack() as stack:
        for m in models:
            stack.enter_context(_eval_mode(m))
        times_ms = time_runners([RUNTIMES[probe.runtime](m, x) for m in models], runs=probe.runs,
                                warmup=probe.warmup, device=device)
    own = times_ms[0]
    quartiles = statistics.quantiles(own, n=4) if len(own) > 1 else [own[0]] * 3
    median_key, iqr_key = latency_keys(batch_size)
    result = {median_key: statistics.median(own), iqr_key: quartiles[2] - quartiles[0]}
    if reference is not None:
        result[relative_latency_key(batch_size)] = statistics.median(own) / statistics.median(times_ms[1])
    return result


def time_runners(runners: Sequence[Callable[[], object]], *, runs: int, warmup: int,
                 device: torch.device | str = "cpu") -> list[list[float]]:
    """Wall time (ms) of each of ``runs`` calls of every runner, interleaved (A B A B ...) after ``warmup`` untimed
    rounds; on CUDA each call is bracketed by a synchronize. One list of times per runner."""
    device = torch.device(device)
    for _ in range(warmup):
        for run in runners:
            run()
    times_ms: list[list[float]] = [[] for _ in runners]
    for _ in range(runs):
        for run, times in zip(runners, times_ms):
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return times_ms


def count_params_m(model: nn.Module) -> float:
    """Number of parameters, in millions (all parameters, trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def count_flops_g(model: nn.Module, *, input_shape: tuple[int, int, int], device: torch.device | str) -> float:
    """Forward FLOPs at batch 1, in GFLOPs, as counted by `torch.utils.flop_counter.FlopCounterMode`.

    Convention: one multiply-add = 2 FLOPs (so GFLOPs ≈ 2 × GMACs). Only matmul/conv/attention-style ops
    are counted; elementwise ops (activations, BN, pooling, the sigmoid gates of attention modules) are
    not — they are small next to the convolutions but not zero.
    """
    x = _example_input(model, input_shape, 1, torch.device(device))
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def device_info(device: torch.device | str, probe: ProbeConfig | None = None) -> dict[str, str | int]:
    """What a timing was measured on, for logging next to it (e.g. as MLflow params).

    Keys: device_name (GPU name, or the CPU model), torch_version, threads (torch intra-op threads now), on CUDA
    also cuda_version (the toolkit torch was built with); given the `probe` the latency was timed with, also
    latency_precision (a `PRECISIONS` name) and latency_layout ("channels_last" | "contiguous").
    """
    device = torch.device(device)
    info: dict[str, str | int] = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model_name(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if probe is not None:
        info["latency_precision"] = probe.precision
        info["latency_layout"] = "channels_last" if probe.channels_last else "contiguous"
    if device.type == "cuda":
        info["cuda_version"] = torch.version.cuda or "unknown"
    return info


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"

