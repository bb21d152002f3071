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
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Deployment precisions for the latency probe: name -> dtype of the weights and the input of the timed copy.
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> torch.dtype:
    """The dtype of a `PRECISIONS` name; a one-line ValueError naming the valid choices otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown latency precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


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


def _deployed(model: nn.Module, *, precision: str, channels_last: bool) -> nn.Module:
    """`model` itself when fp32 and no layout change is asked for; otherwise a converted copy."""
    dtype = check_precision(precision)
    if dtype == torch.float32 and (not channels_last or _is_channels_last(model)):
        return model
    clone = copy.deepcopy(model).to(dtype=dtype)
    return clone.to(memory_format=torch.channels_last) if channels_last else clone


def measure_latency(
    model: nn.Module,
    *,
    input_shape: tuple[int, int, int],
    device: torch.device | str,
    batch_size: int = 1,
    warmup: int = 10,
    runs: int = 30,
    precision: str = "fp32",
    channels_last: bool = False,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    """Forward-pass wall time in milliseconds: median over `runs` timed calls after `warmup` untimed ones.

    input_shape: (C, H, W). The model must already be on `device`. Eval mode, `torch.inference_mode`, no
    autocast; on CUDA every call is bracketed by `torch.cuda.synchronize`. precision: a `PRECISIONS` name;
    other than fp32, weights and input are cast to it (on a copy). channels_last: time the model in NHWC
    (on a copy); False keeps the model's own layout. The input always follows the timed model's layout.
    Returns {median key: ms, IQR key: 75th − 25th percentile in ms}, keys from `latency_keys(batch_size)`:
    latency_ms / latency_iqr_ms at batch 1, latency_b{N}_ms / latency_b{N}_iqr_ms at batch N.
    reference: another model on `device` (e.g. the plain backbone); each timed pass of `model` is then followed by
    one of `reference` under the same conditions, and the result also has ``relative_latency_key(batch_size)``:
    median(model) / median(reference), dimensionless. On a shared machine whose speed drifts (other load, clock
    changes) the ratio repeats far better than the milliseconds do (BENCHMARKS.md, section 3).
    """
    device = torch.device(device)
    models = [_deployed(m, precision=precision, channels_last=channels_last)
              for m in ([model] if reference is None else [model, reference])]
    x = _example_input(models[0], input_shape, batch_size, device)
    times_ms: list[list[float]] = [[] for _ in models]
    with contextlib.ExitStack() as stack, torch.inference_mode():
        for m in models:
            stack.enter_context(_eval_mode(m))
        for _ in range(warmup):
            for m in models:
                m(x)
        for _ in range(runs):
            for m, times in zip(models, times_ms):
                _sync(device)
                start = time.perf_counter()
                m(x)
                _sync(device)
                times.append((time.perf_counter() - start) * 1e3)
    own = times_ms[0]
    quartiles = statistics.quantiles(own, n=4) if len(own) > 1 else [own[0]] * 3
    median_key, iqr_key = latency_keys(batch_size)
    result = {median_key: statistics.median(own), iqr_key: quartiles[2] - quartiles[0]}
    if reference is not None:
        result[relative_latency_key(batch_size)] = statistics.median(own) / statistics.median(times_ms[1])
    return result


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


def device_info(
    device: torch.device | str, *, precision: str = "fp32", channels_last: bool = False
) -> dict[str, str | int]:
    """What a timing was measured on, for logging next to it (e.g. as MLflow params).

    Keys: device_name (GPU name, or the CPU model), torch_version, threads (torch intra-op threads now),
    latency_precision (a `PRECISIONS` name) and latency_layout ("channels_last" | "contiguous"): pass the
    precision and layout the latency was measured in; on CUDA also cuda_version (the toolkit torch was built with).
    """
    device = torch.device(device)
    check_precision(precision)
    info: dict[str, str | int] = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model_name(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "latency_precision": precision,
        "latency_layout": "channels_last" if channels_last else "contiguous",
    }
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


def measure_train_throughput(
    model: nn.Module,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    device: torch.device | str,
    batch_size: int = 128,
    warmup: int = 3,
    steps: int = 10,
) -> dict[str, float]:
    """Training speed on random data: forward + backward + SGD step, in images per second.

    Used to size CPU budgets. The model is trained on noise, so pass a throw-away copy.
    Returns {"train_images_per_s": wall-clock rate, "train_cpu_images_per_s": rate by this process's CPU
    time divided by torch.get_num_threads() — on a shared, oversubscribed machine this approximates
    the rate on idle cores}. bf16 autocast and channels_last on CUDA, as in training.
    """
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    x = torch.randn(batch_size, *input_shape, device=device)
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    if on_cuda:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    modes = {module: module.training for module in model.modules()}
    model.train()

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    _sync(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for module, training in modes.items():
        module.training = training
    return {
        "train_images_per_s": steps * batch_size / wall,
        "train_cpu_images_per_s": steps * batch_size / (cpu / torch.get_num_threads()),
    }
