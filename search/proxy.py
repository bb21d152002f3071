"""``python -m search.proxy space=NAME [key=value ...]``: the proxy-task check, built in.

Does a cheap training budget rank architectures as a long one does? Vertex AI NAS asks its users to check this before
a search; here it is one command. It trains ``archs`` architectures spanning the space (the plain backbone, the
space's controls, then distinct random draws) with ``seeds`` seeds each, at the ``reference`` budget and at every
cheap budget in ``budgets`` (EPOCHSxTRAIN_SIZE, the rest of the recipe as the space's budget says), each run
through ``trials.run_trial`` and scored on the dataset's official test split. It prints, per budget, the seed std of
test_acc, Kendall's tau against the reference ranking with its p-value (accuracy and latency), how well epoch-1
val_acc ranks (with and without the weight average), the cost per run, and recommends the cheapest budget with
tau >= ``min_tau`` whose seed std is below ``effect`` (:mod:`search.summary.fidelity`).

Runs go to ``OUT/SPACE.json`` as they finish (with the command, the environment and the date); rerunning the same
command resumes, skipping finished runs. No Ray, no MLflow: worker processes, one core each on a CPU.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import json
import multiprocessing
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from backbones import ArchConfig, build, canonical
from search.outcomes import LATENCY_MS, PARAMS_M, TEST_ACC, VAL_ACC, VAL_ACC_RAW
from search.settings import cli
from search.settings.config import ProxyConfig, proxy_settings
from search.settings.errors import UserError, exit_on_bad_input
from search.log import say, tell
from search.settings.terminal import format_table
from search.summary.fidelity import BudgetFidelity, fidelity, grace_period, recommend
from spaces import SearchSpace, SpaceError, load_space
from trials import (DatasetMissingError, ProbeConfig, TrainConfig, device_info, evaluate, load_dataset,
                    resolve_device, run_trial)
from trials.augment import normalize
from trials.speed import CANDIDATES, choose_precision

PROBE = ProbeConfig(runs=10, warmup=3, batch=0)  # latency_ms per run: enough for a ranking of latencies


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of the check: an architecture, a seed and a budget."""

    arch_name: str
    arch: dict[str, Any]
    seed: int
    budget: str
    train: dict[str, Any]  # TrainConfig fields
    data: dict[str, Any]  # load_dataset arguments
    device: str
    threads: int

    @property
    def key(self) -> tuple[str, str, int]:
        return self.budget, self.arch_name, self.seed


def proxy(cfg: DictConfig | ProxyConfig) -> dict[str, Any]:
    """Run (or resume) the check as configured; returns what it wrote to ``OUT/SPACE.json``. Bad input raises
    :class:`UserError` before anything is written."""
    settings = proxy_settings(cfg)
    try:
        space = load_space(settings.space)
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    hardware = resolve_device(settings.device.value).type
    try:
        budget = space.budgets["gpu" if hardware == "cuda" else "cpu"].with_overrides(
            dataclasses.asdict(settings.budget))
    except SpaceError as exc:
        raise UserError(str(exc)) from None
    order = [settings.reference, *dict.fromkeys(b for b in settings.budgets if b != settings.reference)]
    data_args = dict(name=space.dataset, root=settings.data.root, val_size=budget.val_size, seed=settings.seed,
                     download=settings.data.download, image_size=settings.data.image_size, cache=settings.data.cache)
    try:
        probe_data = load_dataset(**data_args, train_size=min(budget.batch_size, _size(settings.reference)),
                                  test=True, test_size=settings.data.test_size)  # a bad test_size fails here
    except (DatasetMissingError, ValueError) as exc:
        raise UserError(str(exc)) from None
    base = space.base_arch(backbone=budget.backbone, in_chans=probe_data.in_chans, num_classes=probe_data.num_classes,
                           backbone_kwargs=budget.backbone_kwargs)
    archs = _architectures(space, base=base, count=settings.archs, seed=settings.seed)
    out = Path(settings.out) / f"{space.name}.json"
    earlier = json.loads(out.read_text()) if out.is_file() else None  # the record of this check so far, if any
    recorded = _recorded_precision(earlier) if settings.train.precision.value == "auto" else None
    precision = recorded or _precision(settings.train.precision.value, hardware=hardware, base=base,
                                       data=probe_data, batch=budget.batch_size, threads=budget.cpu_per_trial)
    meta = {"space": space.name, "dataset": space.dataset, "reference": settings.reference, "budgets": order,
            "seeds": settings.seeds, "archs": {name: arch.to_dict() for name, arch in archs.items()},
            "recipe": {"batch_size": budget.batch_size, "lr": budget.lr, "weight_decay": budget.weight_decay,
                       "ema": budget.ema, "val_size": budget.val_size, **precision}, "data_seed": settings.seed,
            "test_size": settings.data.test_size}
    record = _load(out, meta, earlier=earlier)
    done = {(r["budget"], r["arch"], r["seed"]) for r in record["runs"]}
    jobs = [Job(arch_name=name, arch=arch.to_dict(), seed=seed, budget=b, device=hardware,
                threads=budget.cpu_per_trial,
                data={**data_args, "train_size": _size(b), "test": True, "test_size": settings.data.test_size},
                train=dict(epochs=_epochs(b), batch_size=budget.batch_size, lr=budget.lr,
                           weight_decay=budget.weight_decay, ema=budget.ema, report_raw=budget.ema > 0, seed=seed,
                           **precision))
            # seed-major: a check stopped part-way already has every budget and architecture at fewer seeds
            for seed in range(1, settings.seeds + 1) for b in order for name, arch in archs.items()]
    todo = [job for job in jobs if job.key not in done]
    workers = settings.workers or max(1, (os.cpu_count() or 1) // budget.cpu_per_trial)
    say(f"Proxy check of {space.name}: {len(archs)} architectures x {settings.seeds} seeds x {len(order)} budgets "
        f"({', '.join(order)}; reference {settings.reference}) = {len(jobs)} runs, {len(jobs) - len(todo)} done "
        f"before, {workers} at once; training {precision['precision']}"
        f"{' channels_last' if precision['channels_last'] else ''}; results in {out}")
    if settings.report:
        say(f"report=true: the figures of the {len(jobs) - len(todo)} runs recorded so far; nothing is trained")
    else:
        _run(todo, workers=workers, record=record, out=out, total=len(jobs))
    rows = fidelity(record["runs"], reference=settings.reference, budgets=order)
    choice, sentence = recommend(rows, reference=settings.reference, min_tau=settings.min_tau, effect=settings.effect)
    record["summary"] = {"rows": [dataclasses.asdict(r) for r in rows], "recommended": choice, "sentence": sentence}
    _save(out, record)
    tell(_table(rows))
    tell(_epoch_table(rows))
    tell(f"\n{sentence}")
    tell(_grace_sentence(rows, chosen=choice or settings.reference, min_tau=settings.min_tau))
    return record


def _size(budget: str) -> int:
    return int(budget.split("x")[1])


def _epochs(budget: str) -> int:
    return int(budget.split("x")[0])


def _architectures(space: SearchSpace, *, base: ArchConfig, count: int, seed: int) -> dict[str, ArchConfig]:
    """The plain backbone, the controls, then distinct random draws from the space (by canonical form)."""
    archs = dict(list(space.control_archs(base=base).items())[:count])
    seen = {canonical(a) for a in archs.values()}
    rng = random.Random(seed)

    class Draw:  # the one call SearchSpace.sample makes of an Optuna trial
        @staticmethod
        def suggest_categorical(name: str, choices: Any) -> Any:
            return rng.choice(list(choices))

    for _ in range(1000 * count):
        if len(archs) >= count:
            break
        arch = space.sample(Draw(), base=base)
        if (key := canonical(arch)) not in seen:
            seen.add(key)
            archs[f"draw{len(archs) - len(space.controls)}"] = arch
    return archs


def _precision(given: str, *, hardware: str, base: ArchConfig, data: Any, batch: int, threads: int) -> dict:
    """TrainConfig's precision and channels_last: given, or (auto, on a CPU) timed on the plain backbone."""
    if hardware == "cuda" or given != "auto":
        return {"precision": "fp32" if given == "auto" else given, "channels_last": given == "bf16"}
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    images = normalize(data.train_x[:batch], mean=data.mean, std=data.std)
    choice = choose_precision(build(base.plain()), images=images, labels=data.train_y[:batch])
    say(f"Training arithmetic (train.precision=auto): {choice.describe()}")
    precision, channels_last = CANDIDATES[choice.label]
    return {"precision": precision, "channels_last": channels_last}


def _recorded_precision(earlier: dict[str, Any] | None) -> dict[str, Any] | None:
    """The arithmetic an earlier run of the check chose (train.precision=auto is timed once, not on every resume)."""
    recipe = (earlier or {}).get("meta", {}).get("recipe", {})
    return ({"precision": recipe["precision"], "channels_last": recipe["channels_last"]}
            if "precision" in recipe and "channels_last" in recipe else None)


def _load(out: Path, meta: dict[str, Any], *, earlier: dict[str, Any] | None) -> dict[str, Any]:
    """``earlier`` (what ``out`` held) if it is a record of the same check (same space, budgets, seeds,
    architectures, recipe), a new record if there was none; another check's record is refused."""
    environment = {"device": _device_name(), "python": platform.python_version(), "torch": torch.__version__,
                   "threads_per_run": torch.get_num_threads()}
    fresh = {"meta": meta, "command": shlex.join([sys.executable, "-m", "search.proxy", *sys.argv[1:]]),
             "environment": environment, "started": datetime.datetime.now().isoformat(timespec="seconds"),
             "runs": []}
    if earlier is None:
        return fresh
    if earlier.get("meta") != meta:
        raise UserError(f"{out} holds a proxy check with other settings; pass out=ANOTHER_FOLDER or delete it")
    return earlier


def _device_name() -> str:
    return str(device_info("cuda" if torch.cuda.is_available() else "cpu")["device_name"])  # GPU or CPU model


def _save(out: Path, record: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=1))
    partial.replace(out)  # atomic: a killed check leaves the last complete record


def _run(jobs: list[Job], *, workers: int, record: dict[str, Any], out: Path, total: int) -> None:
    """Train ``jobs`` in ``workers`` processes, saving the record after every finished run."""
    if not jobs:
        return
    start, finished = time.monotonic(), len(record["runs"])
    context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state in the workers
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for run in map(concurrent.futures.Future.result, concurrent.futures.as_completed(
                pool.submit(train_one, job) for job in jobs)):
            record["runs"].append(run)
            _save(out, record)
            finished += 1
            left = (time.monotonic() - start) / (finished - total + len(jobs)) * (total - finished)
            say(f"  {finished}/{total} {run['budget']} {run['arch']} seed {run['seed']}: test_acc "
                f"{run[TEST_ACC]:.4f}, val_acc by epoch {' '.join(f'{v:.3f}' for v in run[VAL_ACC])}, "
                f"{run['train_s']:.0f}s training (about {left / 60:.0f} min left)")


_DATA_CACHE: dict[str, Any] = {}


def train_one(job: Job) -> dict[str, Any]:
    """One run in a worker process: build, probe, train, score on the test split."""
    torch.set_num_threads(job.threads)
    key = json.dumps(job.data, sort_keys=True)
    if key not in _DATA_CACHE:  # one entry per budget (runs go seed by seed, so the budgets alternate)
        _DATA_CACHE[key] = load_dataset(**job.data)
    data = _DATA_CACHE[key]
    torch.manual_seed(job.seed)
    model = build(ArchConfig.from_dict(job.arch))
    epochs: list[dict[str, float]] = []
    started = time.perf_counter()
    result = run_trial(model=model, data=data, train=TrainConfig(**job.train), probe=PROBE, device=job.device,
                       threads=job.threads, report=lambda r, _: epochs.append(dict(r.metrics)))
    device = next(model.parameters()).device
    test_acc = evaluate(model, data.to(device), device=device, split="test", precision=job.train["precision"])
    return {"budget": job.budget, "arch": job.arch_name, "seed": job.seed, TEST_ACC: test_acc,
            VAL_ACC: [e[VAL_ACC] for e in epochs], VAL_ACC_RAW: [e.get(VAL_ACC_RAW) for e in epochs],
            LATENCY_MS: result.metrics[LATENCY_MS], PARAMS_M: result.metrics[PARAMS_M],
            "train_s": sum(e["epoch_s"] for e in epochs), "wall_s": time.perf_counter() - started}


def _table(rows: list[BudgetFidelity]) -> str:
    def cell(value: float | None, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    return "\n" + format_table([{
        "budget": r.budget, "runs": str(r.runs), "plain": cell(r.plain_test_acc, ".4f"), "std": cell(r.seed_std, ".4f"),
        "tau": cell(r.tau, ".2f"), "p": cell(r.tau_p, ".3g"), "lat": cell(r.latency_tau, ".2f"),
        "e1": cell(r.epoch1_tau, ".2f"), "e1raw": cell(r.epoch1_tau_raw, ".2f"), "rho": cell(r.epoch1_rho, ".2f"),
        "rhoraw": cell(r.epoch1_rho_raw, ".2f"), "cost": f"{r.cost_s:.0f}"}
        for r in rows], [
        ("budget", "budget", "s"), ("runs", "runs", "s"), ("plain", "plain test_acc", "s"),
        ("std", "seed std", "s"), ("tau", "tau vs reference", "s"), ("p", "p", "s"),
        ("lat", "latency tau", "s"), ("e1", "epoch-1 val tau (ema)", "s"), ("e1raw", "(raw)", "s"),
        ("rho", "epoch-1 val rho (ema)", "s"), ("rhoraw", "(raw)", "s"),
        ("cost", "training s per run", "s")])


def _epoch_table(rows: list[BudgetFidelity]) -> str:
    """Kendall tau of val_acc after each epoch against the reference's final test_acc (average / live weights)."""
    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    epochs = max((len(r.epoch_tau) for r in rows), default=0)
    return ("\nval_acc after epoch k ranks the reference's final test_acc (Kendall tau, weight average / live):\n"
            + format_table([{"budget": r.budget, **{f"e{k + 1}": (f"{cell(r.epoch_tau[k])} / "
                                                               f"{cell(r.epoch_tau_raw[k])}" if k < len(r.epoch_tau)
                                                               else "") for k in range(epochs)}} for r in rows],
                           [("budget", "budget", "s"), *((f"e{k + 1}", f"epoch {k + 1}", "s") for k in range(epochs))]))


def _grace_sentence(rows: list[BudgetFidelity], *, chosen: str, min_tau: float) -> str:
    row = next((r for r in rows if r.budget == chosen), None)
    if row is None or not row.epoch_tau:
        return ""
    epoch = grace_period(row, min_tau=min_tau)
    if epoch is None:
        return (f"Early stopping at {chosen}: no epoch before the last ranks with tau >= {min_tau:g}; ASHA would "
                f"stop on noise there (asha.grace_period={len(row.epoch_tau)} leaves it off).")
    return (f"Early stopping at {chosen}: val_acc after epoch {epoch} ranks with tau {row.epoch_tau[epoch - 1]:.2f} "
            f">= {min_tau:g}: asha.grace_period={epoch}.")


@hydra.main(config_path=None, config_name="proxy", version_base=None)  # search.settings.config.ProxyConfig
def _hydra_main(cfg: DictConfig) -> None:
    with exit_on_bad_input():
        proxy(cfg)


def main(argv: list[str] | None = None) -> None:
    """``python -m search.proxy ARGS``."""
    cli.main(proxy, _hydra_main, config_name="proxy", argv=argv)


if __name__ == "__main__":
    main()
