"""What the parent run records of the plan: the one place the plan's groups are flattened into MLflow params.

The names are those the dashboards and tests read (``asha_grace_period``, ``confirm.top_k``, ``budget.epochs``, ...):
renaming one splits a resumed search's params from its first command's.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from search.outcomes import TEST_IMAGES_PARAM
from search.settings.plan import SearchPlan

# Parent-run params that may differ when a search is resumed (they do not change what the search computes).
MAY_CHANGE_ON_RESUME = ("concurrency",)


def parent_params(plan: SearchPlan) -> dict[str, Any]:
    """The settings the parent run records as params; a resumed search must repeat them (but
    :data:`MAY_CHANGE_ON_RESUME`)."""
    confirm, data = plan.confirm, plan.data
    return {"space": plan.space.name, "sampler": plan.study.sampler, "seed": plan.seed, "hardware": plan.hardware,
            "concurrency": plan.execution.concurrency, "asha_grace_period": plan.asha.grace_period,
            "asha_reduction_factor": plan.asha.reduction_factor, "asha_rank": plan.asha.rank,
            "strategy": plan.strategy,
            **({f"oneshot.{k}": v for k, v in asdict(plan.oneshot).items()} if plan.strategy == "oneshot" else {}),
            "dataset": plan.space.dataset,
            "train.precision": plan.calibration.train_precision,
            **({"latency.table": predictor.table.path} if (predictor := plan.trial_settings.latency_predictor) else {}),
            **({"data.root": plan.data_root} if plan.data_root else {}),
            "data.image_shape": "x".join(str(d) for d in data.image_shape),
            **({TEST_IMAGES_PARAM: len(confirm.data.test_y),
                "confirm.epochs": confirm.epochs, "confirm.train_size": len(confirm.data.train_y)}
               if confirm.data is not None else {}),
            **{f"constraints.{k}": v for k, v in asdict(plan.trial_settings.constraints).items()},
            **({"faults.rate": plan.faults.rate, "faults.kind": plan.faults.kind} if plan.faults.rate else {}),
            "confirm.top_k": confirm.top_k, "confirm.seeds": confirm.seeds,
            "confirm.max_seeds": confirm.max_seeds, "confirm.resolution": confirm.resolution,
            **{f"budget.{k}": v for k, v in asdict(plan.budget).items()}}


def data_info(plan: SearchPlan) -> dict[str, Any]:
    """What the models' input is (search.outcomes.DATA_JSON on the parent run): export hands it to the user."""
    data = plan.data
    return {"task": plan.space.task, "dataset": plan.space.dataset, "root": plan.data_root, "image_shape": list(data.image_shape),
            "mean": list(data.mean), "std": list(data.std), "classes": list(data.classes)}
