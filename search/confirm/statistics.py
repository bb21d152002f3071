"""Statistics of the confirmation phase: is an architecture better than the plain backbone beyond seed noise?

The confirmation phase retrains each confirmed architecture (the front, the controls, and the plain backbone, which is
the *reference*) from scratch on several seeds and measures `test_acc` (top-1 accuracy on the official test split,
fraction 0–1). This module turns those per-seed figures into what the summary, `confirmed.csv` and export show:

- per architecture: n (seeds), mean, sample standard deviation (ddof=1) and a 95% confidence interval of the mean,
  ``mean ± t(0.975, n-1) · std / √n`` (Student t: with 3 seeds the normal 1.96 would be far too narrow; t is 4.30);
- the **paired difference to the reference by seed**: for each seed present in both, ``d = test_acc − test_acc_ref``;
  the mean of d and its 95% t-interval ``mean(d) ± t(0.975, k-1) · std(d) / √k`` over the k paired seeds
  (the paired t-interval, https://en.wikipedia.org/wiki/Paired_difference_test). Pairing matters because a seed fixes
  the data order and augmentation for every architecture alike, so part of the seed-to-seed spread is shared and
  cancels in d; an unpaired comparison of the two means would throw that away;
- the confidence of that interval: 95% for a fixed number of seeds; with the sequential rule of
  :mod:`search.confirm.sequential` each interval is wider (e.g. 99.8%), so that all of them together, over every look
  the rule took, hold with 95%;
- a verdict: ``better`` when the interval of d lies wholly above 0, ``worse`` when wholly below, else
  ``within noise`` (also with fewer than 2 paired seeds: no interval can be formed, and `note` says so); the
  reference itself gets ``reference``;
- the **rank agreement** of the search with its confirmation (:func:`rank_agreement`): Kendall's τ between each
  confirmed architecture's val_acc in the search (one seed, the search's budget) and its confirmed mean test_acc.
  It tells how far the search's cheap budget ranked like the confirmation's (the check Vertex AI NAS runs on a proxy
  task), over the few confirmed rows only: coarse, so it is always given with its n.

Pure Python plus SciPy's t quantiles and Kendall τ (imported on first use); no torch, Ray or MLflow here.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

CONFIDENCE = 0.95  # two-sided level of every interval here (the csv columns say ci95)


class Verdict(str, Enum):
    """How a confirmed architecture compares with the plain backbone (the value is what csv, MLflow and export hold)."""

    REFERENCE = "reference"  # the plain backbone itself
    BETTER = "better"  # the 95% interval of the paired difference lies wholly above 0
    WORSE = "worse"  # ... wholly below 0
    WITHIN_NOISE = "within noise"  # the interval contains 0, or fewer than 2 paired seeds

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Confirmed:
    """One confirmed architecture's test accuracy over seeds, and how it compares with the plain backbone.

    Accuracies and differences are fractions 0–1 of `test_acc` (official test split); intervals are 95% Student t.
    Fields that need two or more seeds (std, intervals) are None with fewer. `latency_ms` (median, batch 1,
    re-measured alone) is filled by the caller, e.g. ``dataclasses.replace(row, latency_ms=...)``.
    """

    name: str  # the caller's key (e.g. "plain", "control:se", "trial 7")
    arch_text: str  # the architecture's string form (ArchConfig), e.g. "se/r8 | - | - | -"
    seeds: tuple[int, ...]  # seeds with a test_acc, ascending
    n: int  # len(seeds)
    mean: float | None  # test_acc mean over seeds (None when n == 0)
    std: float | None  # sample standard deviation (ddof=1) of test_acc over seeds; None when n < 2
    ci_low: float | None  # 95% t-interval of the mean test_acc; None when n < 2
    ci_high: float | None
    n_paired: int  # seeds present both here and in the reference
    diff_mean: float | None  # mean over paired seeds of test_acc − reference test_acc (None when n_paired == 0)
    diff_ci_low: float | None  # 95% paired t-interval of that difference; None when n_paired < 2
    diff_ci_high: float | None
    verdict: Verdict
    note: str = ""  # why a verdict is weak (too few paired seeds, seeds missing on one side); "" when nothing to say
    latency_ms: float | None = None  # median latency, batch 1, eager PyTorch (filled by the caller)
    latency_onnxruntime_ms: float | None = None  # the same in ONNX Runtime's CPU provider (None: not measured)
    diff_level: float = CONFIDENCE  # two-sided confidence of this row's own difference interval (sequential: > 0.95)
    # the architecture's val_acc in the search (one seed, the search's budget; None when it did not train it in full)
    search_val_acc: float | None = None
    # with latency.table: its latency predicted for the table's device (ms), and timed on that device when it is this
    # machine (devices.measure_here; None otherwise)
    latency_target_ms: float | None = None
    latency_target_measured_ms: float | None = None

    @property
    def diff_half_width(self) -> float | None:
        """Half the width of the difference interval (accuracy fraction): the resolution this row reached."""
        if self.diff_ci_low is None or self.diff_ci_high is None:
            return None
        return (self.diff_ci_high - self.diff_ci_low) / 2


@lru_cache(maxsize=None)
def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t critical value: t such that P(|T| ≤ t) = confidence for T with `df` degrees of freedom
    (df=2, 95%: 4.303; df=1: 12.706). SciPy is imported here, on first use, so importing this module stays cheap."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {df}")
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def mean_interval(values: Sequence[float], *, confidence: float = CONFIDENCE,
                  ) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean, sample std with ddof=1, ci_low, ci_high) of `values`: the one t-interval of this package (the
    sequential rule's too). The interval is Student t's, ``mean ± t(0.5 + confidence/2, n-1) · std / √n``, equal to
    SciPy's one-sample interval ``scipy.stats.ttest_1samp(values, 0).confidence_interval(confidence)`` (tested; for
    paired differences it is the paired t-interval), but built from the cached quantile (:func:`t_quantile`):
    ``ttest_1samp`` costs about 0.9 ms a call, and the sequential rule's simulation makes tens of thousands.
    std and the interval are None with fewer than 2 values; everything is None with none."""
    n = len(values)
    if n == 0:
        return None, None, None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None, None, None
    std = statistics.stdev(values)
    half = t_quantile(n - 1, confidence) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_difference(values: Mapping[int, float], reference: Mapping[int, float]) -> dict[int, float]:
    """seed -> ``values[seed] − reference[seed]`` on every seed both have, seeds ascending: the paired difference
    the verdicts and the sequential rule's looks are formed on (fractions 0–1 of test_acc)."""
    return {seed: values[seed] - reference[seed] for seed in sorted(values) if seed in reference}


def confirmation_statistics(
    test_acc: Mapping[str, Mapping[int, float]],
    *,
    reference: str,
    arch_text: Mapping[str, str] | None = None,
    latency_ms: Mapping[str, float] | None = None,
    diff_confidence: float = CONFIDENCE,
    search_val_acc: Mapping[str, float] | None = None,
) -> list[Confirmed]:
    """Per-architecture statistics and the paired verdict against the reference, one `Confirmed` per key of `test_acc`
    (same order).

    test_acc: name -> {seed: test_acc (fraction 0–1)}; a seed whose run failed is simply absent. reference: the key of
    the plain backbone. arch_text / latency_ms / search_val_acc: optional name -> string form / median latency in ms /
    the search's val_acc, copied into the rows. The difference of an architecture to the reference uses only the
    seeds both have (paired by seed); its interval is at `diff_confidence` (the sequential rule's per-interval level;
    95% by default).
    Raises ValueError (one line) when the reference is missing or a test_acc is not a finite fraction.
    """
    if reference not in test_acc:
        raise ValueError(f"reference {reference!r} is not among the confirmed architectures: {', '.join(test_acc)}")
    for name, by_seed in test_acc.items():
        for seed, value in by_seed.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"test_acc of {name!r} at seed {seed} is {value!r}; expected a fraction in 0..1")
    arch_text = arch_text or {}
    latency_ms = latency_ms or {}
    search_val_acc = search_val_acc or {}
    ref = test_acc[reference]
    rows = []
    for name, by_seed in test_acc.items():
        seeds = tuple(sorted(by_seed))
        mean, std, ci_low, ci_high = mean_interval([by_seed[s] for s in seeds])
        diffs = paired_difference(by_seed, ref)
        paired = list(diffs)
        diff_mean, _, diff_low, diff_high = mean_interval(list(diffs.values()), confidence=diff_confidence)
        if name == reference:
            verdict, note = Verdict.REFERENCE, ""
            if len(seeds) < 2:
                note = f"{len(seeds)} seed: no interval (needs ≥ 2)"
        else:
            verdict, note = _verdict(diff_low, diff_high), _pairing_note(seeds, tuple(sorted(ref)), len(paired))
        rows.append(Confirmed(
            name=name, arch_text=arch_text.get(name, name), seeds=seeds, n=len(seeds), mean=mean, std=std,
            ci_low=ci_low, ci_high=ci_high, n_paired=len(paired), diff_mean=diff_mean, diff_ci_low=diff_low,
            diff_ci_high=diff_high, verdict=verdict, note=note, latency_ms=latency_ms.get(name),
            diff_level=diff_confidence, search_val_acc=search_val_acc.get(name),
        ))
    return rows


def _verdict(low: float | None, high: float | None) -> Verdict:
    if low is None or high is None:  # fewer than 2 paired seeds: no interval, so no claim either way
        return Verdict.WITHIN_NOISE
    if low > 0:
        return Verdict.BETTER
    if high < 0:
        return Verdict.WORSE
    return Verdict.WITHIN_NOISE


def _pairing_note(seeds: tuple[int, ...], ref_seeds: tuple[int, ...], n_paired: int) -> str:
    parts = []
    if n_paired < 2:
        parts.append(f"{n_paired} paired seed{'' if n_paired == 1 else 's'} with the plain backbone: "
                     f"no interval (needs ≥ 2), so no verdict beyond noise")
    only_here = [s for s in seeds if s not in ref_seeds]
    only_ref = [s for s in ref_seeds if s not in seeds]
    if only_here or only_ref:
        missing = []
        if only_ref:
            missing.append(f"seed {_seed_list(only_ref)} missing here")
        if only_here:
            missing.append(f"seed {_seed_list(only_here)} missing from the plain backbone")
        parts.append("paired on seed " + (_seed_list([s for s in seeds if s in ref_seeds]) or "none")
                     + " (" + ", ".join(missing) + ")")
    return "; ".join(parts)


def _seed_list(seeds: Iterable[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def diff_text(row: Confirmed, *, digits: int = 4) -> str:
    """The paired difference to the plain backbone as text, ``+0.0022 [-0.0495, +0.0539]`` (``n/a`` where a value
    needs more seeds; ``reference`` for the plain backbone itself): the summary, the report and export show this."""
    if row.verdict is Verdict.REFERENCE:
        return "reference"

    def signed(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.{digits}f}"

    return f"{signed(row.diff_mean)} [{signed(row.diff_ci_low)}, {signed(row.diff_ci_high)}]"


def points(value: float) -> str:
    """An accuracy fraction as signed percentage points, one decimal: 0.0123 -> "+1.2"."""
    return f"{100 * value:+.1f}"


def confirmation_sentence(rows: Sequence[Confirmed], *, resolution: float | None = None, unit: str = "points") -> str:
    """The one plain sentence the summary prints about the confirmed rows, stating the resolution it reached.

    Only a `better` verdict (interval of the paired difference wholly above 0) is ever named as the answer: "X beats
    the plain backbone by +1.2 [+0.4, +2.0] points (95%, 4 seeds)" (with several, the one with the largest mean
    difference, and how many). Without one it says how large a gain the intervals rule out: "No placement beats the
    plain backbone by more than 0.6 points (95%, 5 seeds): keep the plain backbone." With `resolution` (the asked
    half-width, accuracy fraction) it adds whether every interval reached it. 95% is the family-wise level over all
    candidates (and looks of the sequential rule). `unit`: how a point of the score is said (``points`` of
    accuracy; ``mIoU points`` for segmentation, ``search.outcomes.Score.points``). Raises ValueError without a
    reference row.
    """
    reference = next((r for r in rows if r.verdict is Verdict.REFERENCE), None)
    if reference is None:
        raise ValueError("no reference row (verdict 'reference'): the plain backbone must be among the confirmed rows")
    others = [r for r in rows if r is not reference]
    better = sorted((r for r in others if r.verdict is Verdict.BETTER), key=lambda r: -r.diff_mean)
    paired = max((r.n_paired for r in others), default=reference.n)
    widths = [r.diff_half_width for r in others if r.diff_half_width is not None]
    reached = ""
    if resolution is not None and widths:
        reached = (f"; every interval within ±{100 * resolution:.1f}" if max(widths) <= resolution else
                   f"; intervals up to ±{100 * max(widths):.1f} {unit}, ±{100 * resolution:.1f} asked")
    level = f"{CONFIDENCE:.0%}, {paired} seed{'' if paired == 1 else 's'}{reached}"
    if not better:
        highs = [r.diff_ci_high for r in others if r.diff_ci_high is not None]
        if paired < 2 or not highs:
            return (f"With {paired} seed per architecture no difference can be told from seed noise: "
                    f"keep the plain backbone.")
        bound = max(highs)
        room = 1.0 - reference.mean if reference.mean is not None else None
        if room is not None and bound >= room:  # the intervals allow any gain there is room for: nothing resolved
            return (f"Nothing was resolved: the intervals ({level}) allow any gain up to the plain backbone's "
                    f"{100 * room:.1f} {unit} of headroom; keep the plain backbone, or confirm with more seeds "
                    f"(confirm.max_seeds=).")
        if bound <= 0:
            return f"No placement beats the plain backbone: every one is worse ({level}): keep the plain backbone."
        return (f"No placement beats the plain backbone by more than {100 * bound:.1f} {unit} ({level}): "
                f"keep the plain backbone.")
    best = better[0]
    more = f"; {len(better)} placements beat it, this one by the most" if len(better) > 1 else ""
    latency = ""
    if best.latency_ms is not None and reference.latency_ms is not None:
        latency = f", at {best.latency_ms:.2f} ms vs {reference.latency_ms:.2f} ms latency"
    return (f"{best.arch_text} beats the plain backbone by {points(best.diff_mean)} "
            f"[{points(best.diff_ci_low)}, {points(best.diff_ci_high)}] {unit} ({level}{more}){latency}.")


MIN_RANKED = 3  # rows a rank correlation needs: with 2, tau is +1 or -1 whatever the data


@dataclass(frozen=True)
class RankAgreement:
    """How the search's val_acc ranked the confirmed test_acc (:func:`rank_agreement`)."""

    n: int  # confirmed rows with both a search val_acc and a confirmed mean test_acc
    tau: float | None  # Kendall's tau-b; None with fewer than MIN_RANKED rows or when one side is all ties

    def text(self, *, val: str = "val_acc", test: str = "test_acc") -> str:
        """One line for the summary: tau with its n and how coarse it is, or n/a and why (``val``/``test``: the
        score's metric names)."""
        if self.tau is None:
            why = (f"needs {MIN_RANKED} or more confirmed architectures the search trained in full"
                   if self.n < MIN_RANKED else "every value ties on one side")
            return f"Rank agreement of the search with its confirmation: n/a ({why}; n={self.n})."
        pairs = self.n * (self.n - 1) // 2
        return (f"Rank agreement of the search with its confirmation: Kendall tau {self.tau:+.2f} between the "
                f"search's {val} and the confirmed mean {test} over n={self.n} architectures (one swapped pair of "
                f"the {pairs} moves it by {2 / pairs:.2f}).")


def rank_agreement(rows: Sequence[Confirmed]) -> RankAgreement:
    """Kendall's tau (``scipy.stats.kendalltau``, tau-b) of ``search_val_acc`` vs the confirmed mean ``test_acc`` over
    the rows that have both: does the search's budget rank the candidates as the confirmation's does?"""
    pairs = [(row.search_val_acc, row.mean) for row in rows if row.search_val_acc is not None and row.mean is not None]
    if len(pairs) < MIN_RANKED or any(len(set(side)) < 2 for side in zip(*pairs)):
        return RankAgreement(n=len(pairs), tau=None)
    from scipy import stats  # imported on first use: importing this module stays cheap

    return RankAgreement(n=len(pairs), tau=float(stats.kendalltau(*zip(*pairs)).statistic))


# ---------------------------------------------------------------- confirmed.csv

# column -> Confirmed field. test_acc_* and diff_vs_plain_* are fractions 0–1 of test accuracy (diff: this minus the
# plain backbone, paired by seed); ci95 = 95% Student t intervals (the diff's: simultaneous 95% over every candidate
# and look, each interval at its own diff_vs_plain_ci_level); latency_ms: median, batch 1, eager PyTorch;
# latency_onnxruntime_ms: the same in ONNX Runtime (empty when not measured); search_val_acc: the architecture's val_acc
# in the search, at the search's budget (empty when the search did not train it in full); latency_target_ms: predicted
# for the latency table's device, latency_target_measured_ms: timed there when that device is this machine (both
# empty without latency.table).
CSV_COLUMNS: dict[str, str] = {
    "name": "name",
    "arch": "arch_text",
    "seeds": "seeds",
    "n_seeds": "n",
    "test_acc_mean": "mean",
    "test_acc_std": "std",
    "test_acc_ci95_low": "ci_low",
    "test_acc_ci95_high": "ci_high",
    "n_paired_seeds": "n_paired",
    "diff_vs_plain_mean": "diff_mean",
    "diff_vs_plain_ci95_low": "diff_ci_low",
    "diff_vs_plain_ci95_high": "diff_ci_high",
    "diff_vs_plain_ci_level": "diff_level",
    "verdict": "verdict",
    "latency_ms": "latency_ms",
    "latency_onnxruntime_ms": "latency_onnxruntime_ms",
    "search_val_acc": "search_val_acc",
    "latency_target_ms": "latency_target_ms",
    "latency_target_measured_ms": "latency_target_measured_ms",
    "note": "note",
}
_FLOAT_FIELDS = ("mean", "std", "ci_low", "ci_high", "diff_mean", "diff_ci_low", "diff_ci_high", "latency_ms",
                 "latency_onnxruntime_ms", "diff_level", "search_val_acc", "latency_target_ms",
                 "latency_target_measured_ms")
_DIGITS = 6  # decimals written for fractions and milliseconds (test_acc on 10,000 images has 4)


def csv_columns(*, val: str = "val_acc", test: str = "test_acc") -> dict[str, str]:
    """CSV_COLUMNS named for a search's score: ``test_acc_*`` -> ``{test}_*``, ``search_val_acc`` -> ``search_{val}``
    (``test_miou_mean``, ``search_val_miou`` for segmentation)."""
    return {column.replace("test_acc", test).replace("val_acc", val): field for column, field in CSV_COLUMNS.items()}


def write_confirmed_csv(rows: Iterable[Confirmed], path: str | Path, *, val: str = "val_acc",
                        test: str = "test_acc") -> Path:
    """Write `rows` to `path` as CSV with the columns of CSV_COLUMNS named for the score (:func:`csv_columns`; header
    first); seeds as "0 1 2", undefined values (std with one seed, latency not measured) as empty cells. Returns the
    path."""
    path = Path(path)
    columns = csv_columns(val=val, test=test)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(_cell(getattr(row, field)) for field in columns.values())
    return path


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Verdict):
        return value.value
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.{_DIGITS}f}"
    return str(value)


def read_confirmed_csv(path: str | Path) -> list[Confirmed]:
    """The rows `write_confirmed_csv` wrote (floats rounded to 6 decimals); for export and resume. A column that
    an older csv lacks (diff_vs_plain_ci_level, search_val_acc, latency_target_*) takes the field's default."""
    parse = {  # field -> how its cell is read back; every other field is text
        "seeds": lambda text: tuple(int(s) for s in text.split()),
        "n": int, "n_paired": int, "verdict": Verdict,
        **{f: (lambda text: float(text) if text else None) for f in _FLOAT_FIELDS},
    }
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        mean = next((c for c in header if c.startswith("test_") and c.endswith("_mean")), "test_acc_mean")
        test = mean[:-len("_mean")]  # test_acc, test_miou: the score the csv was written for
        columns = csv_columns(val="val_" + test[len("test_"):], test=test)
        return [
            Confirmed(**{field: parse.get(field, str)(record[column]) for column, field in columns.items()
                         if column in record})
            for record in reader
        ]
