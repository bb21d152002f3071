"""Measurements taken before training: latency, parameter count, FLOPs, and which device did it.

Each probe switches the model to eval mode and restores every submodule's train/eval flag afterwards.
"""

from __future__ import annotations

import contextlib
import platform
import statistics
import time
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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


def _example_input(model: nn.Module, input_shape: tuple[int, int, int], batch_size: int, device) -> torch.Tensor:
    x = torch.randn(batch_size, *input_shape, device=device)
    channels_last = any(  # match the model's layout so latency does not include a layout conversion
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in model.parameters()
    )
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def measure_latency(
    model: nn.Module,
    *,
    input_shape: tuple[int, int, int],
    device: torch.device | str,
    batch_size: int = 1,
    warmup: int = 10,
    runs: int = 30,
) -> dict[str, float]:
    """Forward-pass wall time in milliseconds: median over `runs` timed calls after `warmup` untimed ones.

    input_shape: (C, H, W). The model must already be on `device`. Eval mode, `torch.inference_mode`,
    float32 (no autocast); on CUDA every call is bracketed by `torch.cuda.synchronize`.
    Returns {"latency_ms": median, "latency_iqr_ms": 75th − 25th percentile}.
    """
    device = torch.device(device)
    x = _example_input(model, input_shape, batch_size, device)
    times_ms = []
    with _eval_mode(model), torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(runs):
            _sync(device)
            start = time.perf_counter()
            model(x)
            _sync(device)
            times_ms.append((time.perf_counter() - start) * 1e3)
    quartiles = statistics.quantiles(times_ms, n=4) if len(times_ms) > 1 else [times_ms[0]] * 3
    return {"latency_ms": statistics.median(times_ms), "latency_iqr_ms": quartiles[2] - quartiles[0]}


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


def device_info(device: torch.device | str) -> dict[str, str | int]:
    """What a timing was measured on: device name, torch version, intra-op CPU threads."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model_name()
    return {"device_name": name, "torch_version": torch.__version__, "threads": torch.get_num_threads()}


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
