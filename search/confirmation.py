"""The confirmation phase: the front and the controls retrained from scratch on fresh seeds, judged on held-out data.

The search selects on ``val_acc`` of one seed, so its front is optimistic (the winners of a noisy draw). After it,
the most accurate ``confirm.top_k`` front architectures and every control (the plain backbone first) are trained
again through the same trial path (:func:`search.tuning.train_architecture`, as a second Ray Tune experiment in
``runs/NAME/confirm``, so a killed confirmation resumes where it stopped), each with ``confirm.seeds`` seeds that the
search did not use, and scored on the dataset's **official test split**, which the search never saw. Then each
architecture's latency is measured again with nothing else running, and :mod:`search.confirmation_stats` gives
``test_acc`` mean ± std, 95% intervals, the paired difference to the plain backbone and a verdict.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ray import tune
from ray.tune.search import Searcher

from backbones import ArchConfig, build
from search.confirmation_stats import Confirmed, confirmation_statistics
from search.outcomes import CONFIRM_TAG, SEED_TAG
from search.tuning import TrialSettings, run_tuner, train_architecture
from spaces import PLAIN_CONTROL
from trials import ProbeConfig, TensorData, measure_latency, resolve_device

# The per-trial probe is not what confirmation reports (latency is re-measured alone afterwards): keep it minimal.
_NO_PROBE = ProbeConfig(runs=1, warmup=0, batch=0)


@dataclass(frozen=True)
class Candidate:
    """An architecture to confirm: a control (by its name) or a front trial (by its Ray trial id)."""

    name: str
    arch: ArchConfig
    control: bool


def pick_candidates(*, front: Sequence[Mapping[str, Any]], controls: Mapping[str, ArchConfig],
                    top_k: int) -> list[Candidate]:
    """Every control (the plain backbone first), then the ``top_k`` most accurate front trials that are not
    controls (``front`` rows: ``trial_id``, ``val_acc``, ``arch`` as JSON dict, ``control``)."""
    picked = [Candidate(name=name, arch=arch, control=True) for name, arch in controls.items()]
    known = {c.arch.canonical() for c in picked}
    for row in sorted(front, key=lambda r: -r["val_acc"]):
        arch = ArchConfig.from_dict(row["arch_json"])
        if len(picked) - len(controls) >= top_k:
            break
        if row.get("control") or arch.canonical() in known:
            continue
        known.add(arch.canonical())
        picked.append(Candidate(name=row["trial_id"], arch=arch, control=False))
    return picked


def confirmation_seeds(*, search_seed: int, count: int) -> list[int]:
    """Seeds the search did not train with (its trials used ``search_seed``): a front trial's own weights won its
    selection on val_acc, so re-scoring them would carry that luck into the confirmed figure."""
    return [search_seed + 1 + i for i in range(count)]


def run_confirmation(*, candidates: Sequence[Candidate], seeds: Sequence[int], data: TensorData,
                     settings: TrialSettings, experiment_dir: str, resources: Mapping[str, float],
                     concurrency: int, callbacks: Sequence[tune.Callback]) -> tune.ResultGrid:
    """Train every (candidate, seed) for the full budget and score it on the test split (a Ray Tune experiment in
    ``experiment_dir``; a rerun after a crash resumes it, finished runs are not trained again). Needs Ray running."""
    configs = [{"arch": c.arch.to_dict(), "seed": seed, "test": True, "label": f"confirm {c.name} seed {seed}",
                "tags": {CONFIRM_TAG: c.name, SEED_TAG: str(seed)}}
               for c in candidates for seed in seeds]
    trainable = tune.with_parameters(train_architecture, data=data,
                                     settings=dataclasses.replace(settings, probe=_NO_PROBE))
    return run_tuner(trainable=trainable, resources=dict(resources), experiment_dir=experiment_dir,
                     searcher=ListSearcher(configs), scheduler=None, num_samples=len(configs),
                     concurrency=concurrency, callbacks=callbacks)


class ListSearcher(Searcher):
    """Proposes the given configs in order, once each (Ray's grid search nests them under a key; this keeps the
    trial config flat, as the search's is). Its state, saved with each experiment snapshot, is how many it gave."""

    def __init__(self, configs: Sequence[dict[str, Any]]) -> None:
        super().__init__()
        self.configs = list(configs)
        self.given = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.given >= len(self.configs):
            return Searcher.FINISHED
        self.given += 1
        return dict(self.configs[self.given - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps({"given": self.given}))

    def restore(self, checkpoint_path: str) -> None:
        self.given = json.loads(Path(checkpoint_path).read_text())["given"]


def measure_alone(candidates: Sequence[Candidate], *, probe: ProbeConfig, input_shape: tuple[int, int, int],
                  device: str, threads: int) -> dict[str, float]:
    """Median batch-1 latency (ms) of each candidate, measured one after another in this process with nothing else
    of the search running (call it after Ray has shut down), with the trials' thread count."""
    torch.set_num_threads(threads)
    where = resolve_device(device)
    latency = {}
    for candidate in candidates:
        model = build(candidate.arch).to(where)
        latency[candidate.name] = measure_latency(model, probe, input_shape=input_shape, device=where)["latency_ms"]
    return latency


def summarise_confirmation(results: tune.ResultGrid, *, candidates: Sequence[Candidate],
                           latency_ms: Mapping[str, float]) -> list[Confirmed]:
    """The confirmed table: test_acc per candidate and seed from the finished runs (a failed run is left out)."""
    test_acc: dict[str, dict[int, float]] = {c.name: {} for c in candidates}
    for result in results:
        metrics = result.metrics or {}
        if result.error is None and "test_acc" in metrics:
            config = result.config
            test_acc[config["tags"][CONFIRM_TAG]][int(config["seed"])] = float(metrics["test_acc"])
    return confirmation_statistics(test_acc, reference=PLAIN_CONTROL,
                                   arch_text={c.name: str(c.arch) for c in candidates}, latency_ms=latency_ms)
