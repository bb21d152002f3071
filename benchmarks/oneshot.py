"""Does a weight-sharing supernet rank placements as training them from scratch does? Measured on the ground truth.

Issue 25, item 2 (the measurement; the ``strategy=oneshot`` search mode is not built yet). A
``backbones.supernet.Supernet`` over the ground-truth table's space (``benchmarks.attention_table``: 4 stages ×
its types, after every block, head avg) is trained once through the project's training loop
(``trials.train.train_epochs``: the supernet draws one path uniformly per step, SPOS) on a Fashion-MNIST training
slice. Then every architecture of the table is scored with the weights it inherits: its path is activated, the
BatchNorm statistics are re-estimated on ``--recal-batches`` training batches (cumulative average; the shared
statistics belong to no single path), and its val_acc is measured on the table's validation slice (data seed 0,
1,000 images). It prints Kendall tau (with a bootstrap 95% interval over architectures) and Spearman between the
supernet's val_acc and the table's mean test_acc, the overlap of the two top-10 lists, and the table's own
seed-vs-seed tau (the ceiling any ranking can reach against it); and the cost in image-epochs against one table
run's. Then, at equal cost, the search each strategy would run, replayed on the table as
``benchmarks.search_quality`` does: one-shot = the supernet's cost (in table runs) plus its top-k by Pareto rank on
(supernet val_acc, the table's latency_norm_ms) trained (their table val_acc of one seed), with the plain and SE
controls; multi-trial = the shipped sampler (``RunConfig.sampler``) through ``StudySearcher`` with as many trials as the one-shot's total. Each is scored
by the HV ratio of its front (on val_acc) on the table's truth. The per-architecture scores are written beside the
table: ``oneshot_scores_seed{S}.csv`` for ``attention_table.csv``, ``oneshot_scores_v2_seed{S}.csv`` for
``attention_table_v2.csv``, with the run's settings and times in a JSON of the same name.

    python -m benchmarks.oneshot                       # ~15 min on one core of this EPYC
    python -m benchmarks.oneshot --quick               # a smoke run (figures meaningless)
    python -m benchmarks.oneshot --table benchmarks/data/attention_table_v2.csv --supernet-seed 1 --scores-only
    python -m benchmarks.oneshot --table benchmarks/data/attention_table_v2.csv \
        --scores benchmarks/data/oneshot_scores_v2_seed1.csv   # compare saved scores once the table is complete
"""
from __future__ import annotations

import csv
import dataclasses
import json
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks._common import emit, header, parser, setup, spearman, table
from benchmarks.attention_table import CSV_PATH, all_types, arch_key, arch_of, base_arch, table_space
from trials.speed import CANDIDATES

TOP = 10


def _kendall(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy import stats

    return float(stats.kendalltau(a, b).statistic)


def _bootstrap(a: list[float], b: list[float], *, draws: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    taus = []
    for _ in range(draws):
        idx = [rng.randrange(len(a)) for _ in a]
        taus.append(_kendall([a[i] for i in idx], [b[i] for i in idx]))
    taus = sorted(t for t in taus if t == t)
    return taus[int(0.025 * len(taus))], taus[int(0.975 * len(taus)) - 1]


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, default=CSV_PATH)
    p.add_argument("--epochs", type=int, default=None, help="supernet training epochs (default 6)")
    p.add_argument("--train-size", type=int, default=None, help="training images (default 6000)")
    p.add_argument("--recal-batches", type=int, default=None, help="BatchNorm recalibration batches (default 20)")
    p.add_argument("--supernet-seed", type=int, default=0, help="seed of the supernet's init, batches and paths")
    p.add_argument("--scores-only", action="store_true",
                   help="train and score the supernet, write the scores, stop (the table may still be building)")
    p.add_argument("--scores", type=Path, default=None,
                   help="compare the scores a --scores-only run wrote (its CSV) instead of training a supernet")
    args = p.parse_args(argv)
    device = setup(args)
    args.epochs = args.epochs or (1 if args.quick else 6)
    args.train_size = args.train_size or (256 if args.quick else 6000)
    args.recal_batches = args.recal_batches or (2 if args.quick else 20)

    from trials import load_dataset

    meta_path = args.table.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    types = meta.get("space", {}).get("types") or ["none", "se", "eca"]
    budget = meta.get("budget", {})
    rows = list(csv.DictReader(args.table.open(newline="")))
    by_arch: dict[str, dict[int, float]] = {}
    for r in rows:
        by_arch.setdefault(r["arch"], {})[int(r["seed"])] = float(r["test_acc"])
    keys = sorted(arch_key(t) for t in all_types(types))[: 6 if args.quick else None]  # every arch of the space
    truth = {k: statistics.fmean(v.values()) for k, v in by_arch.items()}

    data = load_dataset("fashion_mnist", train_size=args.train_size, val_size=budget.get("val_size", 1000),
                        seed=budget.get("data_seed", 0))
    space, base = table_space(types), base_arch()
    batch = budget.get("batch_size", 64)
    scores_path = args.table.parent / f"oneshot_scores{args.table.stem.removeprefix('attention_table')}_seed{args.supernet_seed}.csv"
    if args.scores:  # a --scores-only run's output: the supernet is not trained again
        with args.scores.open(newline="") as handle:
            scores = {r["arch"]: float(r["supernet_val_acc"]) for r in csv.DictReader(handle)}
        run = json.loads(args.scores.with_suffix(".json").read_text())
        args.epochs, args.train_size, args.supernet_seed = run["epochs"], run["train_size"], run["supernet_seed"]
        train_s, score_s, described, recal_images = run["train_s"], run["score_s"], run["precision"], run["recal_images"]
        keys = [k for k in keys if k in scores]
    else:
        scores, train_s, score_s, described, recal_images = _train_and_score(args, data=data, space=space, base=base,
                                                                             batch=batch, lr=budget.get("lr", 0.05), keys=keys,
                                                                             device=device)
        if not args.quick:  # a smoke run's scores mean nothing: the committed files stay
            with scores_path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["arch", "supernet_val_acc"])
                writer.writerows([k, f"{scores[k]:.4f}"] for k in keys)
            scores_path.with_suffix(".json").write_text(json.dumps(
                {"epochs": args.epochs, "train_size": args.train_size, "supernet_seed": args.supernet_seed,
                 "train_s": round(train_s, 1), "score_s": round(score_s, 1), "precision": described,
                 "recal_images": recal_images, "table": args.table.name,
                 "device": header(device, argv, "benchmarks.oneshot")}, indent=2) + "\n")
            print(f"scores: {scores_path}", flush=True)
        if args.scores_only:
            return {"train_s": train_s, "score_s": score_s}
    keys = [k for k in keys if k in truth]

    a, b = [scores[k] for k in keys], [truth[k] for k in keys]
    tau = _kendall(a, b)
    low, high = _bootstrap(a, b)
    top_super = set(sorted(keys, key=lambda k: -scores[k])[:TOP])
    top_truth = set(sorted(keys, key=lambda k: -truth[k])[:TOP])
    seeds = sorted({s for v in by_arch.values() for s in v})
    both = [k for k in keys if all(s in by_arch[k] for s in seeds[:2])]
    ceiling = _kendall([by_arch[k][seeds[0]] for k in both], [by_arch[k][seeds[1]] for k in both]) \
        if len(seeds) > 1 else float("nan")
    table_run = budget.get("epochs", 2) * budget.get("train_size", 1500)
    cost = args.epochs * args.train_size
    run_s = statistics.median(float(r["wall_s"]) for r in rows if r.get("wall_s"))  # one table run's training s
    hv_rows, hv = _equal_cost(args, scores=scores, cost_runs=cost / table_run, supernet_s=train_s + score_s,
                              run_s=run_s)
    figures = {**hv, "kendall": tau, "kendall_low": low, "kendall_high": high, "spearman": spearman(a, b),
               "top10_overlap": float(len(top_super & top_truth)), "table_seed_kendall": ceiling,
               "cost_in_table_runs": cost / table_run, "train_s": train_s, "score_s": score_s}
    body = (
        f"Supernet over the table's space ({len(keys)} architectures: {', '.join(types)} at each of 4 stages), "
        f"seed {args.supernet_seed}, trained {args.epochs} epochs on {args.train_size} images ({described}), "
        f"{train_s:.0f} s; each path scored after BatchNorm recalibration on {recal_images} training images, "
        f"{score_s:.0f} s for all. "
        f"Supernet cost {cost:,} image-epochs = {cost / table_run:.1f} table runs ({table_run:,} each); the "
        f"table itself is {len(rows)} runs.\n\n"
        + table(["ranking against the table's mean test_acc", "value"], [
            ["Kendall tau (bootstrap 95% over architectures)", f"{tau:.2f} [{low:.2f}, {high:.2f}]"],
            ["Spearman", f"{figures['spearman']:.2f}"],
            [f"top-{TOP} overlap", f"{len(top_super & top_truth)} of {TOP}"],
            [f"the table's own test_acc seed {seeds[0]} vs seed {seeds[-1]} (Kendall: the ceiling)",
             f"{ceiling:.2f}"]])
        + "\n\nAt equal cost (HV ratio of the front on the table's truth, mean ± std over replays):\n\n"
        + table(["strategy", "cost (table runs of image-epochs)", "CPU s (1 thread)", "HV ratio of its front",
                 "export beats plain", "multi-trial at equal HV"], hv_rows)
        + f"\n\nSeconds: the supernet's {train_s:.0f} s of training and {score_s:.0f} s of scoring, and the table's "
          f"median {run_s:.0f} s per run (its runs trained two at a time on 2 cores).")
    print(body)
    emit("One-shot supernet ranking vs the ground truth (benchmarks.oneshot)", header(device, argv, "benchmarks.oneshot"),
         body)
    return figures


def _train_and_score(args, *, data, space, base, batch: int, lr: float, keys: list[str], device: torch.device,
                     ) -> tuple[dict[str, float], float, float, str, int]:
    """Train the supernet (SPOS) and score every path in ``keys``: scores, train s, score s, precision, recal images."""
    from backbones import build
    from backbones.supernet import Supernet
    from search.study.prescreen import recalibrate
    from trials import TrainConfig, evaluate
    from trials.augment import normalize
    from trials.speed import choose_precision
    from trials.train import train_epochs

    images = normalize(data.train_x[:batch], mean=data.mean, std=data.std)
    choice = choose_precision(build(base.plain()), images=images, labels=data.train_y[:batch])
    precision, channels_last = CANDIDATES[choice.label]
    torch.manual_seed(args.supernet_seed)
    supernet = Supernet(space=space, base=base, seed=args.supernet_seed)
    cfg = TrainConfig(epochs=args.epochs, batch_size=batch, lr=lr, seed=args.supernet_seed,
                      precision=precision, channels_last=channels_last)
    start = time.perf_counter()
    for metrics in train_epochs(supernet, data, cfg, device=device):
        print(f"  supernet epoch {metrics['epoch']}/{args.epochs}: train_loss {metrics['train_loss']:.3f} "
              f"({metrics['epoch_s']:.0f} s)", flush=True)
    train_s = time.perf_counter() - start

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = normalize(x, mean=data.mean, std=data.std)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    supernet.sampling = False
    recal = data.train_x[: args.recal_batches * batch]
    start = time.perf_counter()
    scores = {}
    for key in keys:
        supernet.activate(arch_of(key.split("-")))
        recalibrate(supernet, recal, batch_size=batch, prepare=prepare)
        scores[key] = evaluate(supernet, data, device=device, prepare=prepare, precision=precision)
    return scores, train_s, time.perf_counter() - start, choice.describe(), len(recal)


EQUAL_HV_TRIALS = (6, 8, 10, 12, 14, 17, 20, 24, 28, 34, 40)  # multi-trial budgets searched for one-shot's HV


def _equal_cost(args, *, scores: dict[str, float], cost_runs: float, supernet_s: float, run_s: float,
                ) -> tuple[list[list[str]], dict[str, float]]:
    """Rows comparing one-shot (supernet + top-k) with multi-trial search (the shipped sampler) on the table, and
    their figures: at the same total cost in image-epochs, and the multi-trial budget that first reaches one-shot's
    HV ratio (mean over replays) on a grid of budgets. Seconds: the supernet's training and scoring (``supernet_s``)
    plus ``run_s`` per trained architecture (the table's median run), against ``run_s`` per multi-trial trial."""
    from benchmarks.attention_table import base_arch, table_space
    from benchmarks.search_quality import PLAIN, curve, hypervolume, load_table, mean_std, pareto, replay, truth_of
    from search.pareto import pareto_order

    archs, seeds, epochs = load_table(args.table)
    meta = json.loads(args.table.with_suffix(".json").read_text()) if args.table.with_suffix(".json").exists() else {}
    space, base = table_space(meta.get("space", {}).get("types") or ("none", "se", "eca")), base_arch()
    truth = [(a.test_acc, a.latency_ms) for a in archs.values()]
    ref = (min(a for a, _ in truth) - 0.01, 1.05 * max(lat for _, lat in truth))
    true_hv = hypervolume(truth, ref)
    keys = [k for k in scores if k in archs]
    order = [keys[i] for i in pareto_order([(scores[k], archs[k].latency_ms) for k in keys])]
    controls = [PLAIN, "se-se-se-se"]
    replays = 2 if args.quick else 10
    from search.settings.config import RunConfig

    sampler = RunConfig().sampler.value  # multi-trial as it ships
    multi_hv: dict[int, tuple[list[float], list[bool]]] = {}  # trials -> HV ratios, export beats plain

    def multi_trial(trials: int) -> tuple[list[float], list[bool]]:
        if trials not in multi_hv:
            runs = [replay(sampler, seed=r, trials=trials, archs=archs, seeds=seeds, epochs=epochs, space=space,
                           base=base) for r in range(replays)]
            multi_hv[trials] = ([hypervolume([truth_of(archs, key) for key in run["front"]], ref) / true_hv for run in runs],
                              [archs[run["pick"]].test_acc > archs[PLAIN].test_acc for run in runs])
        return multi_hv[trials]

    rows, figures = [], {}
    for k in ((2, 4) if args.quick else (4, 8, 20)):
        picks = [key for key in order if key not in controls][:k]
        total = round(cost_runs + k + len(controls))  # both pay for the controls (multi-trial's count includes them)
        one, one_beats = [], []
        for r in range(replays):
            seed = seeds[r % len(seeds)]
            told = [(curve(archs[key], seed)[-1], archs[key].latency_ms, key) for key in controls + picks]
            front = [key for acc, lat, key in told if (acc, lat) in pareto([(a, l) for a, l, _ in told])]
            one.append(hypervolume([truth_of(archs, key) for key in front], ref) / true_hv)
            pick = max(front, key=lambda key: curve(archs[key], seed)[-1])
            one_beats.append(archs[pick].test_acc > archs[PLAIN].test_acc)
        multi, multi_beats = multi_trial(total)
        grid = [n for n in EQUAL_HV_TRIALS if n <= len(archs)][: 2 if args.quick else None]
        equal = next((n for n in grid if statistics.fmean(multi_trial(n)[0]) >= statistics.fmean(one)), None)
        figures[f"hv_oneshot_top{k}"] = statistics.fmean(one)
        figures[f"hv_multi_{total}"] = statistics.fmean(multi)
        one_s = supernet_s + (k + len(controls)) * run_s
        figures[f"multi_trials_equal_hv_top{k}"] = float(equal) if equal else float("nan")
        figures[f"oneshot_s_top{k}"] = one_s
        rows.append([f"one-shot: supernet + 2 controls + top {k}", f"{cost_runs:.1f} + 2 + {k} = {total}",
                     f"{one_s:.0f}", mean_std(one), f"{sum(one_beats)}/{len(one_beats)}",
                     f"{sampler} needs {equal} trials, {equal * run_s:.0f} s: one-shot costs {total / equal:.2f} of its "
                     f"image-epochs, {one_s / (equal * run_s):.2f} of its seconds" if equal
                     else f"{sampler} does not reach it by {grid[-1]} trials"])
        rows.append([f"multi-trial {sampler}, {total} trials", f"{total}", f"{total * run_s:.0f}", mean_std(multi),
                     f"{sum(multi_beats)}/{len(multi_beats)}", ""])
    return rows, figures


if __name__ == "__main__":
    main()
