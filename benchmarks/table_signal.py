"""How much signal a ground-truth table holds: seed noise, seed-to-seed rank agreement, and effects against both.

Issue 22 asks of the rebuilt table its own seed-to-seed rank correlation (target >= 0.85) and how large the effects
are against the seed noise. From a table of ``benchmarks.attention_table`` (one row per architecture and seed;
test_acc on the official 10,000-image test split), over the architectures that have every seed:

- **seed noise**: test_acc = architecture + seed + residual. A seed sets the init, the batch order and the
  augmentation for every architecture alike, so some seeds are better for all of them; a comparison on the same
  seeds (as the confirmation pairs them) sees the residual's std. The unpaired within-architecture std is beside it;
- **rank agreement**: Kendall tau and Spearman rho of test_acc between every pair of seeds, and what the mean over
  all k seeds would reach against an independent k-seed mean (Spearman-Brown on the mean pairwise Pearson r,
  ``k r / (1 + (k - 1) r)``; a prediction, stated as such);
- **effects**: the between-architecture std of the true means (variance components: var(means) - residual^2 / k),
  its ratio to the seed noise, the best architecture against plain, and how many architectures differ from plain by
  more than the 95% half-width of a difference of two k-seed means on the same seeds (pooled residual, t with
  (archs - 1)(k - 1) dof; uncorrected: about 5% would by chance);
- **additive model**: least squares of test_acc on (stage, type) and seed indicators, none as the baseline, over every row:
  each type's effect at each stage with a 95% interval, and the share of the between-architecture variance that the
  additive model explains (the rest is interaction and noise).

Pure arithmetic over the CSV (seconds).

    python -m benchmarks.table_signal                                      # the rebuilt table (attention_table_v2.csv)
    python -m benchmarks.table_signal --table benchmarks/data/attention_table.csv   # the first table
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks._common import table

DATA_DIR = Path(__file__).parent / "data"
TABLE = DATA_DIR / "attention_table_v2.csv"
PLAIN = "none-none-none-none"
STAGE_COLUMNS = ("s0", "s1", "s2", "s3")


def read_table(path: Path) -> tuple[dict[str, dict[int, float]], dict[str, tuple[str, ...]]]:
    """test_acc per architecture and seed, and each architecture's per-stage types."""
    if not path.exists():
        raise SystemExit(f"--table: {path} does not exist; build one with python -m benchmarks.attention_table")
    acc: dict[str, dict[int, float]] = {}
    types: dict[str, tuple[str, ...]] = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            acc.setdefault(r["arch"], {})[int(r["seed"])] = float(r["test_acc"])
            types[r["arch"]] = tuple(r[c] for c in STAGE_COLUMNS)
    return acc, types


def spearman_brown(r: float, k: int) -> float:
    """Predicted correlation of two independent k-seed means from the one-seed correlation r."""
    return k * r / (1 + (k - 1) * r)


def additive_effects(rows: Sequence[tuple[tuple[str, ...], float]], *, baseline: Sequence[str] = ("none",),
                     ) -> tuple[dict[tuple[int, str], tuple[float, float]], np.ndarray]:
    """Least squares of test_acc on an intercept and one indicator per (factor position, level not in baseline).

    Returns {(position, level): (estimate, standard error)} and the fitted value per row."""
    terms = sorted({(s, t) for types, _ in rows for s, t in enumerate(types) if t not in baseline})
    x = np.array([[1.0] + [float(types[s] == t) for s, t in terms] for types, _ in rows])
    y = np.array([acc for _, acc in rows])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    fitted = x @ beta
    dof = len(y) - x.shape[1]
    sigma2 = float(np.sum((y - fitted) ** 2) / dof) if dof > 0 else float("nan")
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    return {term: (float(beta[i + 1]), math.sqrt(cov[i + 1, i + 1])) for i, term in enumerate(terms)}, fitted


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, default=TABLE, help=f"the table's CSV (default {TABLE})")
    p.add_argument("--quick", action="store_true", help="the same figures (they take seconds); for the smoke test")
    args = p.parse_args(argv)
    acc, types = read_table(args.table)
    seeds = sorted({s for runs in acc.values() for s in runs})
    complete = {a: runs for a, runs in acc.items() if set(runs) == set(seeds)}
    k = len(seeds)
    if PLAIN not in complete:
        raise SystemExit(f"{args.table}: the plain backbone {PLAIN} lacks a seed of {seeds}; finish the table first")
    keys = sorted(complete)
    means = {a: statistics.fmean(complete[a].values()) for a in keys}
    figures: dict[str, float] = {"archs": float(len(keys)), "seeds": float(k)}

    # -- seed noise: a two-way layout, test_acc = architecture + seed + residual. The seed sets the init, the batch
    # order and the augmentation, which every architecture shares, so some seeds are better for all of them: the
    # comparisons that pair architectures on the same seeds (the confirmation's) see only the residual.
    y = np.array([[complete[a][s] for s in seeds] for a in keys])
    seed_offset = y.mean(axis=0) - y.mean()
    resid = y - y.mean(axis=1, keepdims=True) - seed_offset
    dof = (len(keys) - 1) * (k - 1)
    noise = math.sqrt(float(np.sum(resid ** 2)) / dof) if dof else float("nan")  # paired noise, per seed
    unpaired = math.sqrt(statistics.fmean(statistics.variance(complete[a].values()) for a in keys)) if k > 1 else float("nan")
    plain_std = statistics.stdev(complete[PLAIN].values()) if k > 1 else float("nan")
    figures |= {"seed_std": noise, "seed_std_unpaired": unpaired, "plain_mean": means[PLAIN], "plain_std": plain_std,
                "seed_offset_range": float(seed_offset.max() - seed_offset.min())}

    # -- rank agreement between seeds
    pair_rows, pearsons, taus = [], [], []
    for s, t in itertools.combinations(seeds, 2):
        a, b = [complete[x][s] for x in keys], [complete[x][t] for x in keys]
        tau, rho, r = stats.kendalltau(a, b).statistic, stats.spearmanr(a, b).statistic, stats.pearsonr(a, b).statistic
        pearsons.append(r)
        taus.append(tau)
        figures[f"tau_seed{s}_seed{t}"], figures[f"rho_seed{s}_seed{t}"] = float(tau), float(rho)
        pair_rows.append([f"seed {s} vs seed {t}", f"{tau:.2f}", f"{rho:.2f}", f"{r:.2f}"])
    if pearsons:
        figures["tau_seed_pairs_mean"] = statistics.fmean(taus)
        figures["reliability_mean_of_k"] = spearman_brown(statistics.fmean(pearsons), k)
        pair_rows.append([f"mean of {k} seeds vs another {k} (predicted, Spearman-Brown)", "–", "–",
                          f"{figures['reliability_mean_of_k']:.2f}"])

    # -- effects against the noise
    spread = statistics.pstdev(means.values())
    between = math.sqrt(max(0.0, spread ** 2 - noise ** 2 / k)) if k > 1 else float("nan")
    ranked = sorted(keys, key=lambda a: -means[a])
    best, worst = ranked[0], ranked[-1]
    figures |= {"means_std": spread, "between_std": between, "signal_to_noise": between / noise if k > 1 else float("nan"),
                "best_minus_plain": means[best] - means[PLAIN], "range": means[best] - means[worst]}
    effect_rows = []
    if k > 1:
        half = stats.t.ppf(0.975, dof) * noise * math.sqrt(2 / k)  # a difference of two k-seed means on the same seeds
        above = sum(means[a] - means[PLAIN] > half for a in keys if a != PLAIN)
        below = sum(means[a] - means[PLAIN] < -half for a in keys if a != PLAIN)
        figures |= {"half_width_vs_plain": half, "above_plain": float(above), "below_plain": float(below)}
        offsets = ", ".join(f"{o:+.4f}" for o in seed_offset)
        effect_rows = [
            [f"residual seed std of test_acc (architecture × seed; what a comparison on the same seeds sees), "
             f"{dof} dof", f"{noise:.4f}"],
            ["within-architecture std, unpaired (includes the seeds' shared offsets)", f"{unpaired:.4f}"],
            [f"seed offsets (shared by every architecture; seeds {', '.join(map(str, seeds))})", offsets],
            ["plain backbone", f"{means[PLAIN]:.4f} ± {plain_std:.4f} (mean ± std over {k} seeds)"],
            ["std of the architectures' means", f"{spread:.4f}"],
            [f"between-architecture std (means' variance less residual²/{k})", f"{between:.4f} "
             f"(= {between / noise:.2f} × the residual seed std)"],
            ["best − worst mean", f"{means[best] - means[worst]:+.4f} ({best} vs {worst})"],
            [f"best − plain ({best})", f"{means[best] - means[PLAIN]:+.4f} ± {half:.4f}"],
            [f"95% half-width of a difference to plain on the same {k} seeds (pooled residual)", f"{half:.4f}"],
            [f"architectures beyond it (of {len(keys) - 1}; ~{0.05 * (len(keys) - 1):.0f} by chance)",
             f"{above} above plain, {below} below"],
        ]

    # -- additive model over every row, the seeds as factors too
    rows = [(types[a] + (f"seed{s}",), complete[a][s]) for a in keys for s in seeds]
    effects, fitted = additive_effects(rows, baseline=("none", f"seed{seeds[0]}"))
    fitted_mean = {a: statistics.fmean(fitted[i * k:(i + 1) * k]) for i, a in enumerate(keys)}
    explained = statistics.pvariance(fitted_mean.values()) / spread ** 2  # R² of the additive fit on the means
    reliable = between ** 2 / spread ** 2 if k > 1 else float("nan")  # the share of the means' variance that is not noise
    figures |= {"additive_r2": explained, "reliable_share": reliable}
    stage_types = sorted({t for s, t in effects if s < len(STAGE_COLUMNS)})
    add_rows = []
    for t in stage_types:
        cells = []
        for s in range(len(STAGE_COLUMNS)):
            est, se = effects.get((s, t), (float("nan"), float("nan")))
            figures[f"effect_{t}_stage{s}"] = est
            cells.append(f"{est:+.4f} ± {1.96 * se:.4f}")
        add_rows.append([t] + cells)

    meta_path = args.table.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    budget = meta.get("budget", {})
    command = "python -m benchmarks.table_signal" + (" " + " ".join(argv) if argv else "")
    head = (f"Command: `{command}`  \nTable: `{args.table.name}` ({meta.get('device', '?')}, built "
            f"{meta.get('started', '?')} – {meta.get('finished', '?')})  \nDate: "
            f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    body = (f"{len(keys)} architectures with all {k} seeds ({len(acc) - len(keys)} without), {budget.get('epochs', '?')} "
            f"epochs on {budget.get('train_size', '?')} images, weight average {budget.get('ema', '?')}, precision "
            f"{budget.get('precision', '?')}; test_acc on the official 10,000 test images.\n\n"
            "Rank agreement of test_acc between seeds (over the architectures):\n\n"
            + table(["seeds", "Kendall tau", "Spearman rho", "Pearson r"], pair_rows or [["one seed only", "–", "–", "–"]])
            + "\n\nEffects against the seed noise:\n\n"
            + table(["figure", "value"], effect_rows or [["one seed only: no noise estimate", "–"]])
            + f"\n\nAdditive model (least squares over all {len(rows)} rows; effect on test_acc against none at that "
              f"stage, ± 95%). On the architectures' means it has R² {explained:.2f}, where the means' share of variance that is not seed noise is {reliable:.2f}:\n\n"
            + table(["type"] + [f"stage {s}" for s in range(len(STAGE_COLUMNS))], add_rows))
    print(f"\n----- markdown for BENCHMARKS.md -----\n### Signal in the ground-truth table\n\n{head}\n\n{body}\n"
          + "-" * 38)
    return {name: float(value) for name, value in figures.items()}


if __name__ == "__main__":
    main()
