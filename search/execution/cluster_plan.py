"""The search's plan once the driver has joined a Ray cluster (``ray.address=``): its nodes size the search and must
all reach the storage, checked before anything is written to MLflow."""

from __future__ import annotations

import dataclasses

from search.execution.cluster import alive_nodes, check_storage_shared, trial_nodes, trial_slots
from search.log import tell
from search.settings.errors import UserError
from search.settings.plan import SearchPlan


def join_cluster(plan: SearchPlan) -> SearchPlan:
    """The plan on the cluster Ray is connected to: storage checked on each node that can run a trial, concurrency
    counted over those nodes unless ``concurrency=`` was given. Raises :class:`UserError` before any trial."""
    per_trial = plan.per_trial
    nodes = alive_nodes()
    runners = trial_nodes(nodes, cpu_per_trial=per_trial["cpu"], gpu_per_trial=per_trial["gpu"])
    if not runners:
        raise UserError(f"ray.address={plan.ray_address}: no node of the cluster has the {per_trial['cpu']:g} CPU(s) "
                        f"and {per_trial['gpu']:g} GPU(s) a trial takes (budget.cpu_per_trial, budget.gpu_per_trial); "
                        f"nodes: " + ", ".join(f"{n.ip} {n.cpus:g} CPU {n.gpus:g} GPU" for n in nodes))
    check_storage_shared(plan.storage, runners)
    concurrency = plan.concurrency if plan.concurrency_given else trial_slots(
        runners, cpu_per_trial=per_trial["cpu"], gpu_per_trial=per_trial["gpu"])
    tell(f"Ray cluster {plan.ray_address}: {len(nodes)} nodes, {len(runners)} run trials "
         f"({sum(n.cpus for n in runners):g} CPUs, {sum(n.gpus for n in runners):g} GPUs); storage {plan.storage}")
    return dataclasses.replace(plan, concurrency=concurrency)
