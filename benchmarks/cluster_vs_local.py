"""The same small search on the local default and on a loopback Ray cluster, one after the other: wall seconds.

    python -m benchmarks.cluster_vs_local [--repeats 1] [--trials 4]

The cluster is a head with no CPUs and two 1-CPU worker nodes (``ray.cluster_utils.Cluster``, in a private Ray
temp folder, all on 127.0.0.1), as in ``tests/e2e/test_cluster_e2e.py``; the local default starts its own Ray with
the machine's cores (2 trials at once on 2 cores, as the cluster's two workers). Each search is a fresh
``python -m search.run`` (its own folder, SQLite MLflow store), timed from start to exit; the order alternates per
repeat. Prints one line per search, then the trials per node of the cluster runs (from MLflow's ``attnas.node_id``).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray takes 127.0.0.1 as this node's IP


def _search(folder: Path, args: argparse.Namespace, extra: list[str]) -> float:
    folder.mkdir(parents=True)
    space = folder / "small.yaml"  # the shipped space with the plain control only, as in the e2e test
    space.write_text((REPO / "spaces" / "fashion_attention.yaml").read_text() + "\ncontrols: {}\n")
    command = [sys.executable, "-m", "search.run", f"space={space}", "name=bench", f"budget.trials={args.trials}",
               "budget.epochs=2", "budget.train_size=512", "budget.val_size=256", "latency.runs=10",
               "latency.batch=0", "sampler=random", "confirm.top_k=1", "confirm.seeds=2", "confirm.max_seeds=2", *extra]
    t0 = time.monotonic()
    subprocess.run(command, cwd=folder, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--trials", type=int, default=4)
    args = p.parse_args(argv)
    temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    os.environ.update({"RAY_TMPDIR": temp, LOOPBACK: "0",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    import mlflow
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "node_ip_address": "127.0.0.1"})
    nodes = collections.Counter()
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                order = [("local", []), ("cluster", [f"ray.address={cluster.address}"])]
                for where, extra in order if repeat % 2 == 0 else order[::-1]:
                    folder = Path(tmp) / f"{where}-{repeat}"
                    wall = _search(folder, args, extra)
                    print(f"{where:8s} repeat {repeat}: {wall:6.1f} s  (load average {os.getloadavg()[0]:.1f})",
                          flush=True)
                    if where == "cluster":
                        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
                        runs = client.search_runs([client.get_experiment_by_name("attnas").experiment_id])
                        nodes.update((r.data.tags.get("attnas.role"), r.data.tags["attnas.node_id"][:8])
                                     for r in runs if "attnas.node_id" in r.data.tags and r.info.status == "FINISHED")
    finally:
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    print("cluster runs per (role, node):", dict(sorted(nodes.items())))


if __name__ == "__main__":
    main()
