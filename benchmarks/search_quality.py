"""Search quality on the attention-placement ground-truth table: the project's samplers and ASHA, replayed.

Issue 11. ``benchmarks/data/attention_table.csv`` (``python -m benchmarks.attention_table``) holds every
architecture of a 81-arch space (4 stages × {none, se r16, eca k3}) trained for real with several seeds. This replays
searches against it instead of training:

- **Samplers.** Each of ``search.samplers.SAMPLERS`` (tpe, nsga2, random) runs through the search's own suggest path,
  ``search.study.searcher.StudySearcher`` (controls first: the plain backbone and SE r16 everywhere, as the table's
  ``SearchSpace`` lists them; de-duplication by canonical architecture; an in-memory Optuna storage), with
  ``trials`` = N for N = 10%, 25% and 50% of the table's size. Each suggested architecture is looked up and told
  through ``on_trial_complete`` what a real trial would report at its full budget: ``val_acc`` of one training seed
  (replay seed r uses table seed r mod #seeds), the table's latency (measured alone) as ``latency_norm_ms`` and
  ``latency_ms``, ``epoch`` = the table's epochs. The search's Pareto front (``Study.best_trials`` on
  val_acc ↑ / latency ↓) is then scored on the table's truth: the hypervolume of its architectures' (mean test_acc
  over seeds ↑, latency_ms ↓), as a ratio to the hypervolume of the table's true front. Reference point: (lowest mean
  test_acc in the table − 0.01, 1.05 × the highest latency_ms). Also: how often the architecture the search would
  export (the most accurate by val_acc on its front) beats the plain backbone on mean test_acc.
- **ASHA.** Spearman correlation between val_acc after epoch k (one seed) and the final mean test_acc; and
  asynchronous successive halving as Ray's ``ASHAScheduler`` does it (the search's rungs,
  ``search.execution.scheduler.rung_milestones``: grace · rf^k below max_t; a trial reaching a rung stops when its
  val_acc is below the (1 − 1/rf) percentile of the values recorded there before it; the controls are never stopped
  but enter the rungs, as ``search.execution.scheduler.ControlsRunFullASHA``), simulated over random trial orders of
  the whole table: how many of the true top-10 architectures (by mean test_acc) it stops.

    python -m benchmarks.search_quality                 # 3 samplers × 20 seeds × 3 budgets, ~a few minutes
    python -m benchmarks.search_quality --quick         # 3 seeds, budgets 8 and 20 (a smoke run)
    python -m benchmarks.search_quality --table PATH
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import emit, spearman, table

TABLE = Path(__file__).parent / "data" / "attention_table_v2.csv"  # the rebuilt table (issue 22); v1: attention_table.csv
FRACTIONS = (0.10, 0.25, 0.50)  # of the table's size, in trials
ASHA_SETTINGS = ((1, 2.0), (1, 3.0), (1, 4.0), (2, 2.0), (2, 3.0))  # (grace_period, reduction_factor); those with
# grace below the table's epochs are replayed (a grace of the whole budget stops nothing); the shipped ones are
# search.settings.config.AshaConfig's
TOP = 10  # "true top-10"


@dataclass(frozen=True)
class Arch:
    key: str  # "se-none-eca-none"
    test_acc: float  # mean over seeds (the truth)
    latency_ms: float  # the latency the replay ranks and scores (ms, batch 1): see load_table's ``latency``
    val_acc: dict[int, list[float]]  # seed -> val_acc after epoch 1..E


PLAIN = "none-none-none-none"


def load_table(path: Path, *, latency: str = "norm") -> tuple[dict[str, Arch], list[int], int]:
    """Architectures with a latency (mean test_acc over the seeds trained so far); the seeds; the epochs.

    latency "norm": ``latency_norm_ms`` as the search ranks it (``search.outcomes.LATENCY_OBJECTIVE``): the arch's
    latency_rel (timed interleaved with the plain backbone) × the plain backbone's latency_ms, all measured alone;
    "ms": the table's latency_ms as measured (81 probes one after another drift with the machine's speed).
    """
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("latency_ms")]
    if not rows:
        raise SystemExit(f"{path}: no row with a latency yet (run python -m benchmarks.attention_table to the end)")
    seeds = sorted({int(r["seed"]) for r in rows})
    epochs = int(rows[0]["epochs"])
    by_key: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_key.setdefault(r["arch"], {})[int(r["seed"])] = r
    if latency == "norm" and PLAIN not in by_key:
        raise SystemExit(f"{path}: no row of the plain backbone {PLAIN}: latency_norm_ms needs it (or --latency ms)")
    plain_ms = float(next(iter(by_key[PLAIN].values()))["latency_ms"]) if latency == "norm" else 1.0
    archs = {}
    for key, runs in by_key.items():  # an unfinished table: the mean over the seeds trained so far
        archs[key] = Arch(key=key, test_acc=statistics.fmean(float(r["test_acc"]) for r in runs.values()),
                          latency_ms=(float(next(iter(runs.values()))["latency_rel"]) * plain_ms if latency == "norm"
                                      else float(next(iter(runs.values()))["latency_ms"])),
                          val_acc={s: [float(r[f"val_acc_e{e}"]) for e in range(1, epochs + 1)]
                                   for s, r in runs.items()})
    return archs, seeds, epochs


# ---- hypervolume (2-D, by hand: Optuna's hypervolume lives in the private optuna._hypervolume) -----------------
def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (acc ↑, latency ↓) points (``search.pareto.first_front``), distinct, by latency ascending."""
    from search.pareto import first_front

    distinct = sorted(set(points), key=lambda p: (p[1], -p[0]))
    return [distinct[i] for i in first_front(distinct)]


def hypervolume(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (acc ↑, latency ↓) points and bounded by ref = (worst acc, worst latency)."""
    area, prev_acc = 0.0, ref[0]
    for acc, lat in pareto([p for p in points if p[0] > ref[0] and p[1] < ref[1]]):
        area += (acc - prev_acc) * (ref[1] - lat)
        prev_acc = acc
    return area


# ---- the replay --------------------------------------------------------------------------------------------
def replay(sampler: str, *, seed: int, trials: int, archs: dict[str, Arch], seeds: list[int], epochs: int,
           space, base) -> dict:
    """One search of ``trials`` trials through StudySearcher against the table; its front and export pick."""
    import optuna
    from ray.tune.search import Searcher

    from backbones import ArchConfig
    from search.study.searcher import StudySearcher

    table_seed = seeds[seed % len(seeds)]  # falls back to an arch's first seed where the table lacks this one
    searcher = StudySearcher(space=space, base=base, storage=optuna.storages.InMemoryStorage(),
                             study_name=f"replay-{sampler}-{seed}", sampler=sampler, seed=seed, trials=trials,
                             full_epochs=epochs, controls=space.control_archs(base=base), announce=lambda _: None)
    evaluated = []
    for n in range(trials):
        config = searcher.suggest(f"t{n}")
        if config is None or config == Searcher.FINISHED:
            break
        key = "-".join(stage.attn for stage in ArchConfig.from_dict(config["arch"]).stages)
        arch = archs[key]
        evaluated.append(key)
        searcher.on_trial_complete(f"t{n}", {"val_acc": curve(arch, table_seed)[-1], "latency_norm_ms":
                                             arch.latency_ms, "latency_ms": arch.latency_ms, "epoch": epochs})
    front = []
    for t in searcher.study.best_trials:
        front.append(("-".join(s.attn for s in ArchConfig.from_dict(json.loads(t.user_attrs["arch"])).stages),
                      t.values[0]))
    pick = max(front, key=lambda kv: kv[1])[0]  # most accurate by val_acc on the found front
    return {"front": sorted({k for k, _ in front}), "evaluated": evaluated, "pick": pick}


# ---- ASHA ----------------------------------------------------------------------------------------------------
def simulate_asha(order: Sequence[str], *, curves: dict[str, list[float]], controls: set[str], grace: int,
                  rf: float, max_t: int) -> tuple[set[str], int]:
    """Asynchronous successive halving over trials arriving in ``order`` (one at a time); the stopped archs and
    the epochs trained in all."""
    from search.execution.scheduler import rung_milestones

    milestones = rung_milestones(grace_period=grace, reduction_factor=rf, full_epochs=max_t)
    recorded: dict[int, list[float]] = {m: [] for m in milestones}
    stopped, spent = set(), 0
    for key in order:
        trained = max_t
        for m in milestones:
            value = curves[key][m - 1]
            stop = bool(recorded[m]) and value < np.nanpercentile(recorded[m], (1 - 1 / rf) * 100)
            recorded[m].append(value)
            if stop and key not in controls:
                stopped.add(key)
                trained = m
                break
        spent += trained
    return stopped, spent


def simulate_pareto(order: Sequence[str], *, curves: dict[str, list[float]], latency: dict[str, float],
                    controls: set[str], grace: int, rf: float, max_t: int) -> tuple[set[str], int]:
    """The same arrivals under the Pareto rule (``search.pareto.pareto_keeps``, what ``asha.rank=pareto``
    runs) on (val_acc at the rung, latency); the stopped archs and the epochs trained in all."""
    from search.execution.scheduler import rung_milestones
    from search.pareto import pareto_keeps

    milestones = rung_milestones(grace_period=grace, reduction_factor=rf, full_epochs=max_t)
    recorded: dict[int, list[tuple[float, float]]] = {m: [] for m in milestones}
    stopped, spent = set(), 0
    for key in order:
        trained = max_t
        for m in milestones:
            point = (curves[key][m - 1], latency[key])
            keep = pareto_keeps(point, recorded[m], reduction_factor=rf)
            recorded[m].append(point)
            if not keep and key not in controls:
                stopped.add(key)
                trained = m
                break
        spent += trained
    return stopped, spent


def mean_std(values: Sequence[float], fmt: str = ".3f") -> str:
    values = list(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{fmt}} ± {std:{fmt}}"


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, default=TABLE, help=f"the ground-truth CSV (default {TABLE})")
    p.add_argument("--seeds", type=int, default=None, help="replays per sampler and budget (default 20)")
    p.add_argument("--orders", type=int, default=None, help="random trial orders for ASHA (default 100)")
    p.add_argument("--samplers", default=None, help="comma-separated (default: all of search.samplers.SAMPLERS)")
    p.add_argument("--latency", choices=("norm", "ms"), default="norm",
                   help="the latency objective: norm = latency_rel × the plain backbone's ms, as the search ranks "
                        "it (default); ms = the table's raw latency_ms")
    p.add_argument("--trials", default=None, help="comma-separated trial budgets to replay instead of 10%%, 25%% "
                                                  "and 50%% of the table (e.g. 13: the shipped CPU search's size)")
    p.add_argument("--quick", action="store_true", help="3 seeds, 2 budgets, 20 orders: a smoke run (seconds)")
    args = p.parse_args(argv)
    args.seeds = args.seeds or (3 if args.quick else 20)
    args.orders = args.orders or (20 if args.quick else 100)

    import optuna
    import torch

    torch.set_num_threads(1)  # nothing here is torch work; the header then states the trials' setting
    from benchmarks.attention_table import base_arch, table_space
    from search.samplers import SAMPLERS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    samplers = args.samplers.split(",") if args.samplers else list(SAMPLERS)
    archs, seeds, epochs = load_table(args.table, latency=args.latency)
    meta_path = args.table.with_suffix(".json")
    table_types = (json.loads(meta_path.read_text()).get("space", {}).get("types") if meta_path.exists() else None)
    space, base = table_space(table_types or ("none", "se", "eca")), base_arch()
    full = len(space.stages[0].types) ** len(space.stages)
    if len(archs) < full:
        print(f"note: {len(archs)} of {full} architectures have every seed and a latency; replaying on those "
              f"(a suggestion outside them is looked up as missing and skipped)")
    budgets = (sorted({int(t) for t in args.trials.split(",")}) if args.trials else
               sorted({max(3, round(f * len(archs))) for f in (FRACTIONS[:2] if args.quick else FRACTIONS)}))
    controls = {"-".join(s.attn for s in a.stages) for a in space.control_archs(base=base).values()}
    plain = PLAIN
    truth = [(a.test_acc, a.latency_ms) for a in archs.values()]
    ref = (min(a for a, _ in truth) - 0.01, 1.05 * max(lat for _, lat in truth))
    true_hv = hypervolume(truth, ref)
    true_front = pareto(truth)

    # -- samplers
    start = time.perf_counter()
    results: dict[tuple[str, int], list[dict]] = {}
    for sampler in samplers:
        for trials in budgets:
            runs = []
            for seed in range(args.seeds):
                try:
                    runs.append(replay(sampler, seed=seed, trials=trials, archs=archs, seeds=seeds, epochs=epochs,
                                       space=space, base=base))
                except KeyError as missing:  # a partial table: the sampler proposed an arch not in it
                    print(f"  {sampler} seed {seed}: {missing} not in the table; replay skipped")
            results[sampler, trials] = runs
    replay_s = time.perf_counter() - start

    figures: dict[str, float] = {}
    front_hv = {key: [hypervolume([truth_of(archs, k) for k in r["front"]], ref) / true_hv for r in runs]
                for key, runs in results.items()}  # HV ratio of each replay's front, per (sampler, trials)
    rows = []
    for sampler in samplers:
        row = [sampler]
        for trials in budgets:
            runs = results[sampler, trials]
            ratios = front_hv[sampler, trials]
            seen = [hypervolume([truth_of(archs, k) for k in r["evaluated"]], ref) / true_hv for r in runs]
            beats = [archs[r["pick"]].test_acc > archs[plain].test_acc for r in runs]
            figures[f"hv_{sampler}_{trials}"] = statistics.fmean(ratios)
            figures[f"hv_std_{sampler}_{trials}"] = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
            figures[f"beats_plain_{sampler}_{trials}"] = statistics.fmean(beats)
            row += [mean_std(ratios), mean_std(seen), f"{sum(beats)}/{len(beats)}"]
        rows.append(row)
    # each sampler against the shipped one: the difference of mean HV ratio with a Welch 95% interval over replays
    from scipy import stats

    from search.settings.config import RunConfig

    shipped_sampler = RunConfig().sampler.value
    vs_rows = []
    for sampler in [x for x in samplers if x != shipped_sampler and shipped_sampler in samplers]:
        row = [f"{sampler} − {shipped_sampler}"]
        for trials in budgets:
            mine, theirs = front_hv[sampler, trials], front_hv[shipped_sampler, trials]
            diff = statistics.fmean(mine) - statistics.fmean(theirs)
            if len(mine) > 1 and len(theirs) > 1 and (statistics.stdev(mine) > 0 or statistics.stdev(theirs) > 0):
                ci = stats.ttest_ind(mine, theirs, equal_var=False).confidence_interval()
                row.append(f"{diff:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]")
                figures[f"hv_diff_{sampler}_{trials}_low"] = float(ci.low)
            else:
                row.append(f"{diff:+.3f}")
            figures[f"hv_diff_{sampler}_{trials}"] = diff
        vs_rows.append(row)
    head = ["sampler"]
    for trials in budgets:
        head += [f"HV ratio, front, {trials} trials ({trials / len(archs):.0%})", f"HV ratio, all seen, {trials}",
                 f"export beats plain, {trials}"]

    # -- ASHA
    complete = sum(len(a.val_acc) == len(seeds) for a in archs.values())
    rank = sorted(archs, key=lambda k: -archs[k].test_acc)
    top = set(rank[:TOP])
    keys = list(archs)
    truth_acc = [archs[k].test_acc for k in keys]
    corr_rows = []
    for e in range(1, epochs + 1):
        per_seed = [spearman([archs[k].val_acc[s][e - 1] for k in keys if s in archs[k].val_acc],
                             [archs[k].test_acc for k in keys if s in archs[k].val_acc]) for s in seeds]
        mean_val = spearman([statistics.fmean(v[e - 1] for v in archs[k].val_acc.values()) for k in keys],
                            truth_acc)
        figures[f"spearman_val_e{e}"] = statistics.fmean(per_seed)
        corr_rows.append([f"val_acc after epoch {e}" + (" (final)" if e == epochs else ""),
                          " / ".join(f"{c:.3f}" for c in per_seed), f"{mean_val:.3f}"])
    test_of = {}
    with args.table.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["arch"] in archs:
                test_of.setdefault(int(r["seed"]), {})[r["arch"]] = float(r["test_acc"])
    both = [k for k in keys if all(s in archs[k].val_acc for s in seeds[:2])]
    if len(seeds) >= 2 and len(both) > 2:
        keys_both = both
        noise = spearman([test_of[seeds[0]][k] for k in keys_both], [test_of[seeds[1]][k] for k in keys_both])
        figures["spearman_test_seed_vs_seed"] = noise
        corr_rows.append([f"test_acc seed {seeds[0]} vs seed {seeds[1]} over {len(both)} archs (the table's own noise)", f"{noise:.3f}",
                          "–"])
    true_front_keys = {k for k in keys if truth_of(archs, k) in set(true_front)}
    asha_rows = []
    from search.settings.config import AshaConfig

    shipped_asha = AshaConfig()
    for grace, rf in [(g, r) for g, r in ASHA_SETTINGS if g < epochs]:
        for rule in ("val_acc", "pareto"):
            rule_rng = random.Random(grace * 1000 + int(rf * 10))  # both rules see the same orders
            top_stopped, front_stopped, all_stopped, saved, hv = [], [], [], [], []
            for i in range(args.orders):
                order = sorted(controls & set(keys)) + rule_rng.sample([k for k in keys if k not in controls],
                                                                       len(keys) - len(controls & set(keys)))
                seed = seeds[i % len(seeds)]
                curves = {k: curve(archs[k], seed) for k in keys}
                if rule == "val_acc":
                    stopped, spent = simulate_asha(order, curves=curves, controls=controls, grace=grace, rf=rf,
                                                   max_t=epochs)
                else:
                    stopped, spent = simulate_pareto(order, curves=curves, controls=controls, grace=grace, rf=rf,
                                                     max_t=epochs, latency={k: archs[k].latency_ms for k in keys})
                top_stopped.append(len(stopped & top))
                front_stopped.append(len(stopped & true_front_keys))
                all_stopped.append(len(stopped) / len(keys))
                saved.append(1 - spent / (epochs * len(keys)))
                hv.append(hypervolume([truth_of(archs, k) for k in keys if k not in stopped], ref) / true_hv)
            tag = f"g{grace}_rf{rf:g}" + ("" if rule == "val_acc" else "_pareto")
            figures[f"asha_top{TOP}_stopped_{tag}"] = statistics.fmean(top_stopped)
            figures[f"asha_front_stopped_{tag}"] = statistics.fmean(front_stopped)
            figures[f"asha_saved_{tag}"] = statistics.fmean(saved)
            figures[f"asha_hv_{tag}"] = statistics.fmean(hv)
            shipped = (grace, rf, rule) == (shipped_asha.grace_period, shipped_asha.reduction_factor,
                                            shipped_asha.rank.value)
            asha_rows.append([f"{rule}, grace {grace}, rf {rf:g}" + (" (shipped)" if shipped else ""),
                              mean_std(top_stopped, ".1f"), f"{statistics.fmean(all_stopped) * TOP:.1f}",
                              f"{mean_std(front_stopped, '.1f')} of {len(true_front_keys)}",
                              f"{statistics.fmean(all_stopped):.0%}", f"{statistics.fmean(saved):.0%}",
                              mean_std(hv)])

    from benchmarks._common import header

    device_line = header(torch.device("cpu"), argv, "benchmarks.search_quality")
    meta_path = args.table.with_suffix(".json")
    budget = json.loads(meta_path.read_text()).get("budget", {}) if meta_path.exists() else {}
    latency_name = ("`latency_norm_ms` (latency_rel × the plain backbone's latency_ms, as the search ranks it)"
                    if args.latency == "norm" else "`latency_ms` as measured")
    body = (
        f"Table `{args.table.name}`: {len(archs)} architectures × {len(seeds)} seeds ({complete} with every seed), "
        f"{epochs} epochs on "
        f"{budget.get('train_size', '?')} Fashion-MNIST training images (val {budget.get('val_size', '?')}, batch "
        f"{budget.get('batch_size', '?')}, lr {budget.get('lr', '?')}); test_acc on the official 10,000-image test "
        f"split, mean over seeds; latency {latency_name}, batch 1, measured alone. True front: {len(true_front)} architectures; "
        f"reference point (test_acc {ref[0]:.4f}, latency {ref[1]:.3f} ms); true HV {true_hv:.5f}. Plain backbone: "
        f"test_acc {archs[plain].test_acc:.4f}, {archs[plain].latency_ms:.3f} ms; best: {rank[0]} "
        f"{archs[rank[0]].test_acc:.4f}.\n\n"
        f"Samplers ({args.seeds} replays each through `StudySearcher`, controls plain + se_r16 first, de-duplicated; "
        f"HV ratio mean ± std over replays; 'front' = the search's own Pareto front on val_acc, scored on the truth; "
        f"'all seen' = every architecture it trained; replays took {replay_s:.0f} s):\n\n"
        + table(head, rows) + "\n\n"
        + (f"Against the shipped sampler ({shipped_sampler}): difference of the front's mean HV ratio, Welch 95% over "
           f"replays:\n\n" + table(["sampler"] + [f"{t} trials" for t in budgets], vs_rows) + "\n\n"
           if vs_rows else "")
        + f"ASHA: Spearman correlation with the final mean test_acc over all {len(keys)} architectures (per seed / "
        f"val_acc averaged over seeds):\n\n"
        + table(["signal", "per seed", "mean over seeds"], corr_rows) + "\n\n"
        f"ASHA simulated ({args.orders} random trial orders, controls first and never stopped, val_acc of one seed "
        f"per order, max_t = {epochs} epochs):\n\n"
        + table(["rule, setting", f"true top-{TOP} stopped (mean ± std)", "expected if stops were random",
                 "true-front archs stopped", "all archs stopped", "epochs saved",
                 "HV ratio of the archs that ran in full"], asha_rows)
    )
    emit("Search quality on the attention-placement ground truth", device_line, body)
    return figures


def curve(arch: Arch, seed: int) -> list[float]:
    """val_acc after each epoch of ``seed`` (of the arch's first seed when the table lacks that one)."""
    return arch.val_acc.get(seed) or next(iter(arch.val_acc.values()))


def truth_of(archs: dict[str, Arch], key: str) -> tuple[float, float]:
    return archs[key].test_acc, archs[key].latency_ms


if __name__ == "__main__":
    main()
