"""How fast a model trains here, measured: the CPU's training arithmetic is chosen by a short timing, not assumed.

bf16 autocast with channels_last runs ~2.7x faster than fp32 on a Xeon with AMX / AVX-512-BF16 (README, BENCHMARKS.md)
and can run ~10x slower than fp32 on a CPU without them (an AVX2-only AMD EPYC: it falls back to converting kernels).
:func:`choose_precision` times training steps of the actual model in each candidate setting, with the search's thread
count, interleaved (fp32, fp32+nhwc, bf16+nhwc, fp32, ... over :data:`ROUNDS` rounds) so that a moment's load from
another process falls on the settings alike, and :func:`decide` keeps fp32 unless another setting beats it by
:data:`MARGIN` in a clear majority of the rounds.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

# The settings tried, by label -> (TrainConfig.precision, TrainConfig.channels_last). The first is the default, kept
# unless another setting clearly wins: plain fp32 is never pathologically slow (bf16 without AVX-512-BF16/AMX is ~10x
# slower; channels_last can lose on some convolutions) and it is the reference arithmetic, so a wrong "keep" costs at
# most the speed-up, where a wrong switch can cost 10x.
CANDIDATES: dict[str, tuple[str, bool]] = {"fp32": ("fp32", False), "fp32+nhwc": ("fp32", True),
                                           "bf16+nhwc": ("bf16", True)}
# A setting wins a round when it trains at least MARGIN times the default's rate in that round (the two steps ran
# back to back, so a load lasting longer than a round slows both): 10% is above the round-to-round jitter of one
# step on a quiet host and far below the gains worth having (1.2-2.7x, BENCHMARKS.md).
MARGIN = 1.10
ROUNDS = 5  # interleaved rounds: one timed training step of every setting each (~6 s on a 2-core EPYC, 1 thread)
# A clear majority: a setting replaces the default only if it wins at least this share of the rounds (4 of 5), so one
# round spoiled by load neither makes a slower setting win nor stops a faster one from winning; two keep the default.
WIN_SHARE = 0.75
_WARMUP_STEPS = 1  # untimed steps of each setting first (oneDNN primitive creation, allocator)


def wins_needed(rounds: int) -> int:
    """Rounds a setting must win, of ``rounds``, to replace the default (:data:`WIN_SHARE`; 4 of 5, 3 of 3)."""
    return math.ceil(WIN_SHARE * rounds)


@dataclass(frozen=True)
class Comparison:
    """One setting against the default over the interleaved rounds."""

    ratio: float  # median over its rounds of (its img/s / the default's img/s in the same round)
    wins: int  # rounds in which that ratio was >= MARGIN
    timed: int  # rounds it was timed in (fewer than the rounds when it could no longer win: stopped early)


def compare(rounds: Mapping[str, Sequence[float]]) -> dict[str, Comparison]:
    """Every setting but the default (the first key of ``rounds``: label -> img/s per round, in round order; a setting
    may have fewer rounds than the default, its first ones) against the default, round by round."""
    default, *others = rounds
    out = {}
    for label in others:
        ratios = [rate / base for rate, base in zip(rounds[label], rounds[default])]
        out[label] = Comparison(ratio=statistics.median(ratios) if ratios else 0.0,
                                wins=sum(r >= MARGIN for r in ratios), timed=len(ratios))
    return out


def decide(rounds: Mapping[str, Sequence[float]]) -> str:
    """The label chosen from interleaved timings (label -> img/s per round; the first label is the default and has
    every round): of the settings that beat the default by :data:`MARGIN` in at least :func:`wins_needed` rounds,
    the one with the largest median ratio to it; if none does, the default."""
    default = next(iter(rounds))
    need = wins_needed(len(rounds[default]))
    winners = {label: c.ratio for label, c in compare(rounds).items() if c.wins >= need}
    return max(winners, key=winners.get) if winners else default


@dataclass(frozen=True)
class PrecisionChoice:
    """The training setting chosen on this host, and what was measured (images per second of training steps)."""

    precision: str  # "fp32" | "bf16" (TrainConfig.precision)
    channels_last: bool
    img_s: dict[str, float]  # "fp32", "fp32+nhwc", "bf16+nhwc" -> median images/s over its timed rounds
    threads: int  # torch intra-op threads it was measured with
    rounds: dict[str, tuple[float, ...]] = field(default_factory=dict)  # label -> images/s in each round it ran

    @property
    def label(self) -> str:
        """The setting's key in :data:`CANDIDATES`."""
        return next(label for label, setting in CANDIDATES.items() if setting == (self.precision, self.channels_last))

    def describe(self) -> str:
        """One line: what was chosen and how sure (each other setting's median ratio to the default and the rounds it
        won), the rule, and the figures (median img/s and its range over the rounds)."""
        default = next(iter(CANDIDATES))
        total = len(self.rounds.get(default, ()))
        versus = compare(self.rounds) if total else {}

        def against(label: str) -> str:
            c = versus[label]
            stopped = f", stopped after {c.timed}" if c.timed < total else ""
            return f"{c.ratio:.2f}x {default} in {c.wins} of {total} rounds{stopped}"

        if self.label in versus:
            head = f"{self.label}: {against(self.label)}"
        else:
            head = f"{self.label} kept" if versus else self.label
        rest = "; ".join(f"{label} {against(label)}" for label in versus if label != self.label)
        rule = (f"rule: another setting replaces {default} only at >= {MARGIN:.2f}x its img/s in >= "
                f"{wins_needed(total)} of {total} interleaved rounds; ") if total else ""

        def figure(label: str) -> str:
            runs = self.rounds.get(label, ())
            spread = f" [{min(runs):.0f}-{max(runs):.0f}]" if len(runs) > 1 else ""
            return f"{label} {self.img_s[label]:.0f}{spread}"

        figures = ", ".join(figure(label) for label in self.img_s)
        return (f"{head}{f' ({rest})' if rest else ''}; {rule}training img/s with {self.threads} thread(s), "
                f"median [range]: {figures}")


def _stepper(model: nn.Module, *, images: torch.Tensor, labels: torch.Tensor, precision: str,
             channels_last: bool) -> Callable[[], float]:
    """A callable taking one SGD step (forward, loss, backward, update) of a copy of ``model`` on the batch in this
    setting and returning its seconds; ``model`` itself is not touched."""
    trial = copy.deepcopy(model).train()
    x = images.contiguous(memory_format=torch.channels_last) if channels_last else images
    if channels_last:
        trial.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(trial.parameters(), lr=1e-3, momentum=0.9)

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = trial(x)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def choose_precision(model: nn.Module, *, images: torch.Tensor, labels: torch.Tensor,
                     rounds: int = ROUNDS) -> PrecisionChoice:
    """Time every candidate setting (:data:`CANDIDATES`) on this CPU with the current thread count, on ``images`` (one
    training batch of the trial's size, normalised: a smaller batch can hide what channels_last gains): one warm-up
    step each, then ``rounds`` rounds of one timed step of each setting in turn; choose by :func:`decide`. A setting
    that can no longer win enough rounds is not timed further (bf16 where the CPU has no bf16 arithmetic: its steps
    take ~10x fp32's, so this saves most of the cost); the decision is the same as if it had been."""
    steppers = {label: _stepper(model, images=images, labels=labels, precision=precision, channels_last=nhwc)
                for label, (precision, nhwc) in CANDIDATES.items()}
    for step in steppers.values():
        for _ in range(_WARMUP_STEPS):
            step()
    default = next(iter(CANDIDATES))
    timed: dict[str, list[float]] = {label: [] for label in CANDIDATES}
    for done in range(rounds):  # rounds done before this one
        for label, step in steppers.items():  # the default first: the others compare with its step of this round
            won = compare({default: timed[default], label: timed[label]})[label].wins if label != default else 0
            if label == default or won + rounds - done >= wins_needed(rounds):
                timed[label].append(len(labels) / step())
    label = decide(timed)
    precision, channels_last = CANDIDATES[label]
    return PrecisionChoice(precision=precision, channels_last=channels_last,
                           img_s={name: statistics.median(rates) for name, rates in timed.items()},
                           threads=torch.get_num_threads(), rounds={name: tuple(r) for name, r in timed.items()})
