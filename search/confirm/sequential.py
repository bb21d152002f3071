"""Confirmation to a stated resolution: seeds are added until every interval is narrow enough, without the repeated
looks inflating the error rate.

The confirmation trains every candidate and the plain backbone on the same seeds (paired). At ``min_seeds`` seeds and
then at about 1.5x as many each time (3, 5, 8, 10 for 3..10) it *looks*: per candidate, the interval of the mean paired difference ``d = test_acc − test_acc_plain``
(fractions 0–1 of accuracy). It stops when every interval's half-width is at most ``resolution``, or at ``max_seeds``.

Looking after every seed and stopping when the data look good would make a fixed 95% interval too optimistic
(the more looks, the likelier one of them excludes 0 by chance). So this is a **group-sequential design with an
alpha-spending function** (Lan & DeMets 1983, https://doi.org/10.1093/biomet/70.3.659): the error rate ``alpha`` is
spent over the possible looks by the Pocock-type function ``alpha · ln(1 + (e − 1) · t)``, t = seeds / max_seeds
(https://en.wikipedia.org/wiki/Alpha_spending_function), which spends early, where stopping matters. Each look gets
the increment it spends, divided by the number of candidates (**Bonferroni** across the candidates compared with the
one plain backbone), as the two-sided error of a Student t interval. By the union bound the chance that *any*
candidate's interval at *any* look misses its true difference is at most ``alpha``, whatever the correlation between
looks and candidates, so the interval reported at the look where the rule stopped is a simultaneous 95% interval.
We use the union bound instead of exact group-sequential boundaries (which need the normal joint law of the looks)
because seed outcomes are not normal; Bonferroni instead of Holm because the verdict needs simultaneous intervals
(a resolution), which Holm's step-down does not give.

Why a t interval on outcomes that may be bimodal (some seeds learn a relation, others stay at chance): at 3–10
seeds no bootstrap or rank method can reach a small per-look error (a sign test over 3 seeds cannot go below
p = 0.25), while the t interval's width follows the observed spread, so a bimodal candidate stays wide and the rule
keeps adding seeds ("more seeds when the spread says so"). :func:`simulate` measures its error rate and power on
normal, bimodal and skewed outcomes (tests/search/test_sequential.py; BENCHMARKS.md section 11, the confirmation's
sequential rule on simulated confirmations). Its known blind spot: noise-free
two-point outcomes where every seed lands on the same point give zero spread; real test accuracies always carry
test-set sampling noise.

Pure Python plus SciPy (t quantiles, imported on first use); no torch, Ray or MLflow.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from search.confirm.statistics import mean_interval

LOOK_GROWTH = 1.5  # each look after about this many times the seeds of the one before
ALPHA = 0.05  # family-wise two-sided error of the whole confirmation: all candidates, all looks (95% intervals)


@dataclass(frozen=True)
class SequentialDesign:
    """When the confirmation looks, how much error each look may spend, and when it stops.

    resolution: the half-width (accuracy fraction, 0.01 = 1 point) every candidate's interval must reach to stop
    early. min_seeds / max_seeds: the first look / the seed cap (the last look). alpha: family-wise error over all
    looks and candidates.
    """

    resolution: float = 0.01
    min_seeds: int = 3
    max_seeds: int = 10
    alpha: float = ALPHA

    def __post_init__(self) -> None:
        if not 1 <= self.min_seeds <= self.max_seeds:
            raise ValueError(f"need 1 <= min_seeds <= max_seeds, got min_seeds={self.min_seeds}, "
                             f"max_seeds={self.max_seeds}")
        if not (self.resolution > 0 and 0 < self.alpha < 1):
            raise ValueError(f"need resolution > 0 and 0 < alpha < 1, got {self.resolution}, {self.alpha}")

    @property
    def looks(self) -> tuple[int, ...]:
        """The seed counts at which the rule looks: min_seeds, then about 1.5x more each time, and max_seeds last
        (3..10: 3, 5, 8, 10). Fewer looks than one per seed leave each look more of the error to spend: with 3
        candidates the final half-width is 1.33 s (s: the seeds' std of d) instead of 1.49 s with a look after every
        seed (a single fixed look at 10 seeds: 0.93 s)."""
        looks = [self.min_seeds]
        while looks[-1] < self.max_seeds:
            looks.append(min(self.max_seeds, max(looks[-1] + 1, math.ceil(looks[-1] * LOOK_GROWTH))))
        return tuple(looks)

    def spent(self, seeds: int) -> float:
        """Error spent by the looks up to `seeds` seeds (Pocock-type spending; 0 before the first look)."""
        done = [n for n in self.looks if n <= seeds]
        if not done:
            return 0.0
        return self.alpha * math.log(1 + (math.e - 1) * done[-1] / self.max_seeds)

    def next_look(self, seeds: int) -> int | None:
        """The seed count of the first look after `seeds` seeds (None after the last)."""
        return next((n for n in self.looks if n > seeds), None)

    def look_alpha(self, seeds: int, *, candidates: int) -> float:
        """The two-sided error of one candidate's interval at the look at `seeds` seeds (one of `looks`): that
        look's spending increment, split over `candidates` (Bonferroni)."""
        if seeds not in self.looks:
            raise ValueError(f"{seeds} seeds is not a look of this design (looks at {self.looks})")
        earlier = [n for n in self.looks if n < seeds]
        return (self.spent(seeds) - (self.spent(earlier[-1]) if earlier else 0.0)) / max(1, candidates)


@dataclass(frozen=True)
class Interval:
    """One candidate's paired difference to the plain backbone at a look (fractions 0–1 of accuracy)."""

    n: int  # paired seeds
    mean: float | None  # mean of d; None without seeds
    low: float | None  # interval at this look's level; None with fewer than 2 seeds
    high: float | None
    level: float | None  # the interval's own two-sided confidence, e.g. 0.9943 (simultaneous 95% overall)

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


@dataclass(frozen=True)
class Look:
    """What one look decided: every candidate's interval, and whether to stop (and why)."""

    seeds: int
    intervals: dict[str, Interval]
    stop: bool
    reason: str  # "resolution reached" | "seed cap reached" | "" (go on)


def t_interval(values: Sequence[float], *, level: float) -> Interval:
    """The Student t interval of the mean of `values` at two-sided confidence `level`
    (:func:`search.confirm.statistics.mean_interval`, as an :class:`Interval`)."""
    mean, _, low, high = mean_interval(values, confidence=level)
    return Interval(n=len(values), mean=mean, low=low, high=high, level=None if low is None else level)


def look(diffs: Mapping[str, Sequence[float]], *, design: SequentialDesign) -> Look:
    """The look after the seeds in `diffs` (candidate name -> paired differences d, one per seed, all candidates on
    the same seeds). Stops when every half-width is ≤ ``design.resolution`` or the seed cap is reached."""
    seeds = max((len(d) for d in diffs.values()), default=0)
    level = 1 - design.look_alpha(seeds, candidates=len(diffs))
    intervals = {name: t_interval(d, level=level) for name, d in diffs.items()}
    narrow = all(i.half_width is not None and i.half_width <= design.resolution for i in intervals.values())
    if seeds >= design.min_seeds and narrow:
        return Look(seeds=seeds, intervals=intervals, stop=True, reason="resolution reached")
    if seeds >= design.max_seeds:
        return Look(seeds=seeds, intervals=intervals, stop=True, reason="seed cap reached")
    return Look(seeds=seeds, intervals=intervals, stop=False, reason="")


def run_sequence(draw: Callable[[int], Mapping[str, float]], *, design: SequentialDesign) -> Look:
    """Apply the rule to a stream of seeds: ``draw(seed_index)`` gives every candidate's d for one more seed;
    the first look that stops is returned (what the confirmation phase does, with training in place of `draw`)."""
    diffs: dict[str, list[float]] = {}
    for index in range(design.max_seeds):
        for name, d in draw(index).items():
            diffs.setdefault(name, []).append(d)
        if index + 1 in design.looks:
            result = look(diffs, design=design)
            if result.stop:
                return result
    raise AssertionError("unreachable: the look at max_seeds always stops")


# ---------------------------------------------------------------- simulation

def _normal(rng: random.Random) -> float:
    return rng.gauss(0.0, 1.0)


def _bimodal(rng: random.Random) -> float:
    """Two noisy modes at ±0.9 (a seed learns the relation or stays at chance), unit variance overall."""
    return rng.choice((-0.9, 0.9)) + rng.gauss(0.0, math.sqrt(1 - 0.81))


def _skewed(rng: random.Random) -> float:
    """Mostly small noise, now and then a large jump (20% of seeds, +2.2), centred and of unit variance."""
    jump = 2.2 if rng.random() < 0.2 else 0.0
    raw = jump + rng.gauss(0.0, 0.6)
    return (raw - 0.44) / math.sqrt(0.36 + 0.2 * 0.8 * 2.2 ** 2)


def _left_skewed(rng: random.Random) -> float:
    """The mirror image of `_skewed`: now and then a large drop (the skew that would fake a "better")."""
    return -_skewed(rng)


# name -> a draw of unit variance and mean 0: how one seed's d scatters around its true value
DRAWS: dict[str, Callable[[random.Random], float]] = {
    "normal": _normal, "bimodal": _bimodal, "skewed": _skewed, "left_skewed": _left_skewed}


@dataclass(frozen=True)
class SimulationResult:
    """How the rule behaved on `runs` simulated confirmations (all candidates with the same true difference)."""

    runs: int
    better: float  # fraction of runs where some candidate's interval lies wholly above 0
    worse: float  # ... wholly below 0
    covered: float  # fraction of runs where every candidate's interval contains its true difference
    mean_seeds: float  # seeds trained per run, on average
    resolved: float  # fraction of runs that stopped on the resolution (not the cap)


def simulate(*, design: SequentialDesign, effect: float, spread: float, draw: str = "normal", candidates: int = 3,
             runs: int = 1000, seed: int = 0) -> SimulationResult:
    """Run the rule on `runs` simulated confirmations: every candidate's per-seed d is ``effect + spread · e`` with e
    from ``DRAWS[draw]`` (independent across candidates and seeds; spread = the std of d in accuracy)."""
    rng = random.Random(seed)
    noise = DRAWS[draw]
    better = worse = covered = resolved = 0
    seeds_total = 0
    names = [f"c{i}" for i in range(candidates)]
    for _ in range(runs):
        result = run_sequence(lambda _index: {n: effect + spread * noise(rng) for n in names}, design=design)
        intervals = result.intervals.values()
        better += any(i.low > 0 for i in intervals)
        worse += any(i.high < 0 for i in intervals)
        covered += all(i.low <= effect <= i.high for i in intervals)
        resolved += result.reason == "resolution reached"
        seeds_total += result.seeds
    return SimulationResult(runs=runs, better=better / runs, worse=worse / runs, covered=covered / runs,
                            mean_seeds=seeds_total / runs, resolved=resolved / runs)
