"""Running on an existing Ray cluster (``ray.address=``): reach it, see its nodes, size the search, check storage.

The search's driver (``python -m search.run``) joins the cluster as a Ray driver, so it runs on a machine that is a
node of it (the head, or any machine after ``ray start --address=HEAD:PORT``). Trials go wherever Ray places them;
since Ray 2.7 each trial writes its checkpoints straight to ``storage=`` from its own node, so every node that runs
trials must reach the same storage: a URI (``s3://``, ``gs://``) or a folder shared at the same path (NFS).
:func:`check_storage_shared` checks that for a folder by asking a task on each node whether it sees a marker the
driver wrote there.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from search.execution.storage import is_uri
from search.log import tell
from search.settings.errors import UserError
from search.settings.plan import ExecutionPlan

REACH_TIMEOUT_S = 5.0  # TCP connect to the head's GCS port before anything is written
STORAGE_CHECK_TIMEOUT_S = 120.0  # the marker tasks: a node that must start a worker process first takes seconds


@dataclass(frozen=True)
class Node:
    """An alive Ray node as the search sees it."""

    node_id: str  # Ray's hex node id
    ip: str
    cpus: float  # its CPU resource (what Ray schedules by, not the machine's cores)
    gpus: float


def reachable_address(address: str, *, find_auto: Callable[[], str | None]) -> str:
    """The cluster's HOST:PORT for ``ray.address=address`` (``auto`` resolved by ``find_auto``), after a TCP connect
    to it; raises :class:`UserError` (one line) when there is none or it does not answer."""
    resolved = find_auto() if address == "auto" else address
    if resolved is None:
        raise UserError("ray.address=auto: no running Ray cluster found (RAY_ADDRESS is unset and no 'ray start' "
                        "cluster runs on this machine); start one with 'ray start --head --port=6379' or give "
                        "ray.address=HOST:PORT")
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        shown = address if resolved == address else f"{address} ({resolved})"
        raise UserError(f"ray.address={shown}: no Ray cluster answers there ({exc}); start its head with "
                        f"'ray start --head --port={port or 6379}' or fix the address (omit ray.address to run on "
                        f"a local Ray)") from None
    return resolved


def trial_nodes(nodes: Sequence[Node], *, cpu_per_trial: float, gpu_per_trial: float) -> list[Node]:
    """The nodes with the resources for at least one trial (a head started with ``--num-cpus=0`` runs none)."""
    return [n for n in nodes if n.cpus >= cpu_per_trial and n.gpus >= gpu_per_trial]


def trial_slots(nodes: Sequence[Node], *, cpu_per_trial: float, gpu_per_trial: float) -> int:
    """How many trials fit at once: per node (a trial never spans nodes), by CPUs, and by GPUs when trials take
    some; at least 1. The default ``concurrency`` on a cluster, and (one node: this machine) locally."""
    total = 0
    for node in nodes:
        fit = node.cpus // cpu_per_trial if cpu_per_trial > 0 else float("inf")
        if gpu_per_trial > 0:
            fit = min(fit, node.gpus // gpu_per_trial)
        total += 0 if fit == float("inf") else int(fit)
    return max(1, total)


def join_cluster(execution: ExecutionPlan, *, per_trial: Mapping[str, float]) -> ExecutionPlan:
    """The plan's execution on the cluster Ray is connected to: storage checked on each node that can run a trial
    (``per_trial``: the CPUs and GPUs one takes), concurrency counted over those nodes unless ``concurrency=`` was
    given. Raises :class:`UserError` before any trial, and before anything is written to MLflow."""
    nodes = alive_nodes()
    runners = trial_nodes(nodes, cpu_per_trial=per_trial["cpu"], gpu_per_trial=per_trial["gpu"])
    if not runners:
        raise UserError(f"ray.address={execution.ray_address}: no node of the cluster has the {per_trial['cpu']:g} "
                        f"CPU(s) and {per_trial['gpu']:g} GPU(s) a trial takes (budget.cpu_per_trial, "
                        f"budget.gpu_per_trial); nodes: "
                        + ", ".join(f"{n.ip} {n.cpus:g} CPU {n.gpus:g} GPU" for n in nodes))
    check_storage_shared(execution.storage, runners)
    concurrency = execution.concurrency if execution.concurrency_given else trial_slots(
        runners, cpu_per_trial=per_trial["cpu"], gpu_per_trial=per_trial["gpu"])
    tell(f"Ray cluster {execution.ray_address}: {len(nodes)} nodes, {len(runners)} run trials "
         f"({sum(n.cpus for n in runners):g} CPUs, {sum(n.gpus for n in runners):g} GPUs); storage "
         f"{execution.storage}")
    return dataclasses.replace(execution, concurrency=concurrency)


def alive_nodes() -> list[Node]:
    """The cluster's alive nodes (needs ``ray.init`` done)."""
    import ray

    return [Node(node_id=n["NodeID"], ip=n.get("NodeManagerAddress", "?"), cpus=float(n["Resources"].get("CPU", 0)),
                 gpus=float(n["Resources"].get("GPU", 0)))
            for n in ray.nodes() if n.get("Alive")]


def check_storage_shared(storage: str, nodes: Sequence[Node], *,
                         sees: Callable[[str, Sequence[Node]], dict[str, bool]] | None = None) -> None:
    """Raise :class:`UserError` unless every node in ``nodes`` reaches ``storage`` (a resolved folder or URI).

    A URI is taken as shared (Ray reaches it from every node through pyarrow). For a folder the driver writes a
    marker file into it and ``sees`` (default: one tiny Ray task pinned to each node) says which nodes see it; the
    marker is removed afterwards, and so is the folder when this check made it.
    """
    if is_uri(storage) or not nodes:
        return
    folder = Path(storage)
    made = [f for f in (folder, *folder.parents) if not f.exists()]  # the folders mkdir makes, deepest first
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".attnas-shared-{uuid.uuid4().hex}"
    marker.write_text("written by the search's driver; each Ray node checks that it sees this file\n")
    try:
        seen = (sees or _sees_on_each_node)(str(marker), nodes)
    finally:
        marker.unlink(missing_ok=True)
        for made_here in made:
            made_here.rmdir()
    blind = [n for n in nodes if not seen.get(n.node_id, False)]
    if blind:
        which = ", ".join(f"{n.ip} ({n.node_id[:8]})" for n in blind)
        raise UserError(
            f"storage={storage} is a folder that {len(blind)} of the {len(nodes)} Ray nodes running trials cannot "
            f"see ({which}); since Ray 2.7 every node writes its trials' checkpoints to storage itself: pass "
            f"storage= a folder shared at the same path on every node (NFS) or a URI such as s3://BUCKET/attnas")


def _sees_on_each_node(path: str, nodes: Sequence[Node]) -> dict[str, bool]:
    """Run :func:`_exists` on each node (pinned there, no CPU taken); node id -> whether it sees ``path``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0, max_retries=0)(_exists)
    refs = [check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)).remote(path)
            for node in nodes]
    try:
        return dict(zip((n.node_id for n in nodes), ray.get(refs, timeout=STORAGE_CHECK_TIMEOUT_S)))
    except ray.exceptions.RayTaskError as exc:  # e.g. a node that cannot import this package
        raise UserError(f"a Ray node could not run the search's storage check ({str(exc).strip().splitlines()[-1]}); "
                        f"every node needs this package and its dependencies installed (README, 'Run on a "
                        f"cluster')") from None


def _exists(path: str) -> bool:
    return os.path.exists(path)
