"""``strategy=oneshot``: a weight-sharing supernet pre-screens the space before any trial trains.

The supernet (``backbones.supernet``) is trained once, in the driver before Ray starts, through the trials'
training loop (one path drawn uniformly per step; ``oneshot.epochs``). Then ``oneshot.sample`` distinct architectures
drawn from the space are scored with the weights they inherit: BatchNorm statistics re-estimated for the path on
``oneshot.recal_batches`` training batches, val_acc on the search's validation split, the ranked latency from the
usual probe (latency_norm_ms; latency_target_ms from ``latency.table`` when set, without a probe). The
``budget.trials`` best by Pareto rank on (supernet val_acc ↑, that latency ↓; non-dominated
front, then NSGA-II crowding) become the search's trials, trained from scratch and confirmed as in a multi-trial
search. MLflow: the supernet is a nested run (``attnas.role`` = supernet) with its ranking as ``ranking.csv``; after
the search, Kendall tau between the supernet's val_acc and the trials' own full-budget val_acc is logged there and
printed. The supernet's training state is saved after every epoch (``runs/NAME/supernet.pt`` with a folder storage),
so an interrupted pre-screen resumes after its last finished epoch, bit for bit. On the ground-truth table the
supernet ranks architectures no better than one training run per architecture does (BENCHMARKS.md section 14, a
weight-sharing supernet's ranking against the ground truth): treat its picks as a pre-screen, not a verdict.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones import ArchConfig, build, canonical
from backbones.supernet import Supernet
from search.pareto import pareto_order
from search.outcomes import (EPOCH, LATENCY_MS, LATENCY_REL, PRESCREEN_TAG, ROLE_TAG, SEARCH_TAG,
                             SUPERNET_ROLE, TRAIN_LOSS, VAL_ACC)
from search.log import say, tell
from search.settings.terminal import format_table
from trials import measure_latency
from trials.augment import normalize
from trials.train import evaluate, train_epochs

# what a run of this mode prints first, so a user weighs its picks before they train: BENCHMARKS.md section 14's
# result in one sentence (the section is its home; tests/e2e/test_oneshot_e2e.py checks the sentence is printed)
TABLE_TAU = "0.27 [0.14, 0.40] and 0.44 [0.33, 0.54]"  # two supernet seeds' Kendall tau on the table [95% interval]
MEASURED = (f"one-shot pre-screen: on the ground-truth table two supernet seeds ranked architectures with Kendall tau "
            f"{TABLE_TAU}, and one seed's picks never beat plain (one training run per "
            "architecture: 0.41-0.48; BENCHMARKS.md section 14); its picks are trained from scratch and confirmed "
            "as usual")
MAX_DRAWS_PER_ARCH = 20  # draws per distinct architecture before the space counts as exhausted


@dataclasses.dataclass(frozen=True)
class Scored:
    arch: ArchConfig
    val_acc: float  # with the supernet's inherited weights
    ranked_ms: float  # the latency the search ranks (plan.score.latency), ms
    rank: int = 0  # position in the Pareto order, 0 = best


def recalibrate(model: nn.Module, images: torch.Tensor, *, batch_size: int, prepare) -> None:
    """Re-estimate every BatchNorm's running statistics on ``images`` for the model's active path (a cumulative
    average over the batches); eval mode afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(prepare(images[start:start + batch_size]))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def prescreen(plan: Any, *, search: Any, settings: Any) -> list[ArchConfig]:
    """The architectures the search trains: the supernet's top ``budget.trials`` (read back on resume)."""
    tags = search.client.get_run(search.run_id).data.tags
    if PRESCREEN_TAG in tags:
        picks = [ArchConfig.from_dict(a) for a in json.loads(tags[PRESCREEN_TAG])]
        tell(f"One-shot pre-screen: resumed with its {len(picks)} picks (parent run tag {PRESCREEN_TAG})")
        return picks
    tell(f"Note: {MEASURED}.")
    cfg = plan.oneshot
    epochs = cfg.epochs or 2 * plan.budget.epochs
    torch.set_num_threads(max(1, plan.execution.concurrency * plan.budget.cpu_per_trial))
    device = torch.device("cuda" if plan.hardware == "cuda" else "cpu")
    data = dataclasses.replace(plan.data, test_x=None, test_y=None)  # the pre-screen never sees the test split
    if device.type == "cuda":
        data = data.to(device)
    torch.manual_seed(plan.seed)
    supernet = Supernet(space=plan.space, base=plan.base_arch, seed=plan.seed).to(device)
    train = dataclasses.replace(settings.train, epochs=epochs, ema=0.0, compile=False)
    state_path = _state_path(plan)
    resume = torch.load(state_path, weights_only=False) if state_path is not None and state_path.is_file() else None
    if resume is not None:
        supernet.set_path_state(resume["path_rng"])
        say(f"supernet: resuming after epoch {resume[EPOCH]}/{epochs} ({state_path})")

    def save(state: dict[str, Any]) -> None:
        if state_path is not None:  # written whole, then renamed: a kill leaves the previous epoch's state
            state_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({**state, "path_rng": supernet.path_state()}, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)

    start = time.monotonic()
    for metrics in train_epochs(supernet, data, train, device=device, checkpoint=save, resume=resume):
        say(f"supernet epoch {metrics[EPOCH]}/{epochs}: train_loss {metrics[TRAIN_LOSS]:.3f} "
            f"({metrics['epoch_s']:.0f} s)")
    train_s = time.monotonic() - start
    scored, score_s = _score(plan, supernet=supernet, data=data, settings=settings, train=train, device=device)
    picks = [s.arch for s in scored[: plan.budget.trials]]
    _record(plan, search=search, scored=scored, picks=len(picks), epochs=epochs, train_s=train_s, score_s=score_s)
    tell(f"One-shot pre-screen: {len(scored)} architectures scored with inherited weights in {score_s:.0f} s "
         f"(supernet trained {epochs} epochs in {train_s:.0f} s); the {len(picks)} best by Pareto rank train "
         f"from scratch:")
    tell(format_table([{"rank": s.rank + 1, VAL_ACC: s.val_acc, "lat": s.ranked_ms, "arch": str(s.arch)}
                       for s in scored[: len(picks)]],
                      [("rank", "rank", "d"), (VAL_ACC, "supernet val_acc", ".4f"),
                       ("lat", plan.score.latency, ".2f"), ("arch", "architecture", "s")]))
    search.client.set_tag(search.run_id, PRESCREEN_TAG, json.dumps([a.to_dict() for a in picks]))
    return picks


def _state_path(plan: Any) -> Path | None:
    """Where the supernet's training state is kept between epochs: the search's storage folder (None when the
    storage is a URI: an interrupted pre-screen then trains again from the start)."""
    from search.execution import storage

    where = plan.execution.storage
    return None if storage.is_uri(where) else Path(storage.join(where, plan.name)) / "supernet.pt"


def _draw(supernet: Supernet, *, count: int) -> list[ArchConfig]:
    """Up to ``count`` distinct (by canonical form) architectures drawn uniformly from the space."""
    found: dict[str, ArchConfig] = {}
    for _ in range(count * MAX_DRAWS_PER_ARCH):
        arch = supernet.sample()
        found.setdefault(canonical(arch).to_json(), arch)
        if len(found) == count:
            break
    return list(found.values())


def _score(plan: Any, *, supernet: Supernet, data: Any, settings: Any, train: Any,
           device: torch.device) -> tuple[list[Scored], float]:
    cfg = plan.oneshot
    nhwc = device.type == "cuda" or train.channels_last

    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = normalize(images, mean=data.mean, std=data.std)
        return x.contiguous(memory_format=torch.channels_last) if nhwc else x

    supernet.sampling = False
    recal = data.train_x[: cfg.recal_batches * train.batch_size]
    probe = dataclasses.replace(settings.probe, batch=0)
    reference = build(plan.base_arch.plain()).to(device) if settings.reference_latency_ms else None
    start = time.monotonic()
    rows = []
    archs = _draw(supernet, count=cfg.sample)
    for i, arch in enumerate(archs, 1):
        supernet.activate(arch)
        recalibrate(supernet, recal, batch_size=train.batch_size, prepare=prepare)
        val_acc = evaluate(supernet, data, device=device, prepare=prepare, precision=train.precision)
        latency = (settings.latency_predictor.predict(arch) if settings.latency_predictor is not None
                   else _measured_latency(arch, probe=probe, data=data, device=device, reference=reference,
                                          reference_ms=settings.reference_latency_ms))
        rows.append(Scored(arch=arch, val_acc=val_acc, ranked_ms=latency))
        if i % 10 == 0 or i == len(archs):
            say(f"scored {i}/{len(archs)} architectures with inherited weights")
    order = pareto_order([(r.val_acc, r.ranked_ms) for r in rows])
    return [dataclasses.replace(rows[i], rank=position) for position, i in enumerate(order)], \
        time.monotonic() - start


def _measured_latency(arch: ArchConfig, *, probe: Any, data: Any, device: torch.device, reference: nn.Module | None,
                      reference_ms: float | None) -> float:
    """latency_norm_ms of ``arch`` (latency_ms without a reference), as a trial's probe measures it."""
    timing = measure_latency(build(arch).to(device), probe, input_shape=data.image_shape, device=device,
                             reference=reference)
    return timing[LATENCY_REL] * reference_ms if reference is not None else timing[LATENCY_MS]


def _record(plan: Any, *, search: Any, scored: Sequence[Scored], picks: int, epochs: int, train_s: float,
            score_s: float) -> None:
    """The supernet as a nested MLflow run with its ranking (ranking.csv) as an artifact."""
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    client = search.client
    run = client.create_run(search.experiment_id, run_name=f"{plan.name}-supernet",
                            tags={MLFLOW_PARENT_RUN_ID: search.run_id, ROLE_TAG: SUPERNET_ROLE, SEARCH_TAG: plan.name})
    now = int(time.time() * 1000)
    params = {"epochs": epochs, "sample": plan.oneshot.sample, "recal_batches": plan.oneshot.recal_batches,
              "scored": len(scored), "picks": picks}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric("train_s", train_s, now, 0), Metric("score_s", score_s, now, 0)])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ranking.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["rank", "picked", "supernet_val_acc", plan.score.latency, "arch", "arch_json"])
            for s in scored:
                writer.writerow([s.rank + 1, s.rank < picks, f"{s.val_acc:.4f}", f"{s.ranked_ms:.4f}",
                                 str(s.arch), s.arch.to_json()])
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")


def compare_with_trials(plan: Any, *, search: Any, results: Iterable[Any]) -> float | None:
    """Kendall tau between the supernet's val_acc and the trials' own full-budget val_acc over the picks that
    trained in full; logged on the supernet run and printed. None when fewer than 3 picks finished."""
    from scipy import stats

    client = search.client
    runs = client.search_runs([search.experiment_id], filter_string=(
        f"tags.mlflow.parentRunId = '{search.run_id}' and tags.`{ROLE_TAG}` = '{SUPERNET_ROLE}'"), max_results=1)
    if not runs:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(runs[0].info.run_id, "ranking.csv", folder)
        with open(path, newline="") as handle:
            supernet = {canonical(ArchConfig.from_dict(json.loads(r["arch_json"]))).to_json(): float(r["supernet_val_acc"])
                        for r in csv.DictReader(handle)}
    pairs = []
    for result in results:
        metrics, config = result.metrics or {}, result.config or {}
        if config.get("control") or metrics.get("training_iteration") != plan.budget.epochs:
            continue
        key = canonical(ArchConfig.from_dict(config["arch"])).to_json()
        if key in supernet and VAL_ACC in metrics:
            pairs.append((supernet[key], metrics[VAL_ACC]))
    if len(pairs) < 3:
        tell(f"One-shot pre-screen: {len(pairs)} picks trained in full; too few to rank against the supernet.")
        return None
    tau = float(stats.kendalltau(*zip(*pairs)).statistic)
    client.log_metric(runs[0].info.run_id, "kendall_vs_trials", tau)
    tell(f"One-shot pre-screen: over the {len(pairs)} picks that trained in full, the supernet's val_acc ranks "
         f"their own val_acc with Kendall tau {tau:.2f} (on the ground-truth table: {TABLE_TAU} for two "
         f"supernet seeds, BENCHMARKS.md section 14).")
    return tau
