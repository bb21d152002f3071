"""How fast a model trains here, measured: the CPU's training arithmetic is chosen by a short timing, not assumed.

bf16 autocast with channels_last runs ~2.7x faster than fp32 on a Xeon with AMX / AVX-512-BF16 (README, BENCHMARKS.md)
and can run slower than fp32 on a CPU without them (it falls back to converting kernels). :func:`choose_precision`
times a few training steps of the actual model in each candidate setting, with the search's thread count, and keeps
fp32 unless another setting is clearly faster.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The settings tried, by label -> (TrainConfig.precision, TrainConfig.channels_last); fp32 first: the fallback
CANDIDATES: dict[str, tuple[str, bool]] = {"fp32": ("fp32", False), "fp32+nhwc": ("fp32", True),
                                           "bf16+nhwc": ("bf16", True)}
MARGIN = 1.10  # another setting must train this many times faster than plain fp32 to be chosen (timing noise)
_WARMUP_STEPS = 1  # untimed steps first (oneDNN primitive creation, allocator)


@dataclass(frozen=True)
class PrecisionChoice:
    """The training setting chosen on this host, and what was measured (images per second of training steps)."""

    precision: str  # "fp32" | "bf16" (TrainConfig.precision)
    channels_last: bool
    img_s: dict[str, float]  # "fp32", "fp32+nhwc", "bf16+nhwc" -> median images/s of the timed steps
    threads: int  # torch intra-op threads it was measured with

    @property
    def label(self) -> str:
        """The setting's key in :data:`CANDIDATES`."""
        return next(label for label, setting in CANDIDATES.items() if setting == (self.precision, self.channels_last))

    def describe(self) -> str:
        """One line: what was chosen, and the figures it was chosen by."""
        figures = ", ".join(f"{name} {rate:.0f}" for name, rate in self.img_s.items())
        return f"{self.label} (training img/s with {self.threads} thread(s): {figures})"


def training_img_s(model: nn.Module, *, images: torch.Tensor, labels: torch.Tensor, precision: str,
                   channels_last: bool, steps: int = 3, give_up_below: float = 0.0) -> float:
    """Median images/s of ``steps`` SGD steps (forward, loss, backward, update) of a copy of ``model`` on one batch
    (``images`` float NCHW, ``labels``), after warm-up steps; ``model`` itself is not touched. A setting slower than
    ``give_up_below`` images/s at its first timed step is not timed further (that rate is returned)."""
    trial = copy.deepcopy(model).train()
    x = images.contiguous(memory_format=torch.channels_last) if channels_last else images
    if channels_last:
        trial.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(trial.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for step in range(_WARMUP_STEPS + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = trial(x)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= _WARMUP_STEPS:
            times.append(time.perf_counter() - start)
            if len(labels) / times[0] < give_up_below:
                break
    return len(labels) / sorted(times)[len(times) // 2]


def fastest(rates: dict[str, float]) -> str:
    """The label of the fastest setting in ``rates`` (label -> img/s), if it beats plain fp32 (the first of
    :data:`CANDIDATES`) by :data:`MARGIN`; else plain fp32."""
    fallback = next(iter(CANDIDATES))
    best = max(rates, key=rates.get)
    return best if rates[best] >= MARGIN * rates[fallback] else fallback


def choose_precision(model: nn.Module, *, images: torch.Tensor, labels: torch.Tensor, steps: int = 3) -> PrecisionChoice:
    """Time every candidate setting (:data:`CANDIDATES`) on this CPU with the current thread count, on ``images`` (one
    training batch of the trial's size, normalised: a smaller batch can hide what channels_last gains); choose the
    fastest if it beats plain fp32 by :data:`MARGIN`, else fp32. A setting at under half of fp32's rate is given up
    after one timed step (bf16 where the CPU has no bf16 arithmetic: ~9x slower than fp32 on an AMD EPYC here)."""
    rates: dict[str, float] = {}
    for label, (precision, channels_last) in CANDIDATES.items():
        floor = rates[next(iter(CANDIDATES))] / 2 if rates else 0.0
        rates[label] = training_img_s(model, images=images, labels=labels, precision=precision,
                                      channels_last=channels_last, steps=steps, give_up_below=floor)
    precision, channels_last = CANDIDATES[fastest(rates)]
    return PrecisionChoice(precision=precision, channels_last=channels_last, img_s=rates,
                           threads=torch.get_num_threads())
