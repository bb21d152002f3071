"""The search on an existing Ray cluster with a shared MLflow tracking server, for real, on loopback.

A Ray head (0 CPUs: it runs no trial) and two 1-CPU worker nodes (``ray.cluster_utils.Cluster``: real raylets, GCS
and workers as separate processes, each node with its own object store), and a real ``mlflow server`` (SQLite
backend, artifacts proxied to its own folder) on 127.0.0.1. The CLI runs as a subprocess with
``ray.address=`` and ``mlflow.tracking_uri=``; it is SIGKILLed after two trials finished and the same command is
run again, which resumes. Then: trials ran on both workers, the runs, nested runs, Pareto artifacts and weights are
on the server (in its artifact folder, not beside the driver), no trial was lost or trained twice, the cluster kept
its nodes, and ``search.export`` works against the server. Every process the test starts is stopped by its handle
or process group; Ray's temp folder (and its current-cluster file) is a private one, so no other Ray on the
machine is touched.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[2]
TRIALS = 4  # searched; plus the plain control (the test space lists no other controls)
TOTAL = TRIALS + 1
SEEDS = 2  # confirmation seeds (confirm.top_k=1: plain and at most one front architecture)
NAME = "on-cluster"
DONE = re.compile(r"\] +(\w+) (done|stopped early by ASHA|FAILED)")
STARTED = re.compile(r"trial \d+/\d+ (\w+) (start|restarts after the crash)")

LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray takes 127.0.0.1 as this node's IP (ray_constants)

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPUs and two 1-CPU workers on 127.0.0.1, in a private Ray temp folder; removed afterwards."""
    from ray.cluster_utils import Cluster

    saved = {key: os.environ.get(key) for key in ("RAY_TMPDIR", "PYTHONPATH", LOOPBACK)}
    temp = tempfile.mkdtemp(prefix="rc", dir="/tmp")  # short: Ray's socket paths live under it
    os.environ["RAY_TMPDIR"] = temp  # Ray's current-cluster file goes here, not to /tmp/ray (other Rays' home)
    # This machine's Ray IP is the loopback one, for the nodes and the driver (the subprocess inherits it): else
    # ray.init turns ray.address=127.0.0.1:PORT into the machine's outward IP, where this GCS does not listen.
    os.environ[LOOPBACK] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved["PYTHONPATH"]]))  # workers import us
    local = {"node_ip_address": "127.0.0.1"}
    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **local})
    try:
        workers = [started.add_node(num_cpus=1, **local) for _ in range(2)]
        started.wait_for_nodes()
        yield started, {node.node_id for node in workers}
    finally:
        started.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def server(mlflow_server, tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and proxied artifacts (its own process group)."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    started = mlflow_server(backend=f"sqlite:///{folder / 'server.db'}", artifacts=folder / "artifacts")
    return started.uri, folder / "artifacts"


def _run_until(command: list[str], cwd: Path, pattern: str | None, timeout: float = 600) -> tuple[list[str], float]:
    """Run the search; SIGKILL it as soon as a stdout line matches ``pattern`` (None: to the end). Lines, wall s."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    seen, deadline, ended = [], time.monotonic() + timeout, False
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                ended = True
                break
            seen.append(line.rstrip("\n"))
            if pattern is not None and re.search(pattern, line):
                break
        if not ended:  # the pattern came (the kill this test is about), or the time ran out
            seen.append("(SIGKILL)" if pattern is not None and seen and re.search(pattern, seen[-1]) else
                        f"(killed by the test after {timeout:.0f}s)")
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and not ended:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
    if seen and seen[-1] == "(SIGKILL)":
        return seen, time.monotonic() - t0
    assert pattern is None, f"never saw {pattern!r}:\n" + "\n".join(seen[-40:])
    assert proc.returncode == 0, "\n".join(seen[-40:])
    return seen, time.monotonic() - t0


@pytest.fixture(scope="module")
def sessions(cluster, server, tmp_path_factory: pytest.TempPathFactory):
    """The search killed after two trials finished, then rerun to its end; (folder, [lines per session], walls)."""
    started, _ = cluster
    uri, _ = server
    folder = tmp_path_factory.mktemp("driver")
    space = folder / "small.yaml"  # the shipped space with the plain control only: a smaller test
    space.write_text((REPO / "spaces" / "fashion_attention.yaml").read_text() + "\ncontrols: {}\n")
    command = [sys.executable, "-m", "search.run", f"space={space}", f"name={NAME}", f"budget.trials={TRIALS}",
               "budget.epochs=2", "budget.train_size=512", "budget.val_size=256", "latency.runs=10",
               "train.precision=fp32", "data.test_size=500",
               "latency.batch=0", "sampler=random", "confirm.top_k=1", f"confirm.seeds={SEEDS}", f"confirm.max_seeds={SEEDS}",
               f"ray.address={started.address}", f"mlflow.tracking_uri={uri}", f"storage={folder / 'shared'}"]
    first, wall_1 = _run_until(command, folder, rf"\(2/{TOTAL} finished\)")
    second, wall_2 = _run_until(command, folder, None)
    restarted = sum("restarts after the crash" in line for line in second)
    print(f"\ncluster search: killed after {wall_1:.0f}s, rerun to the end in {wall_2:.0f}s; "
          f"{restarted} trial(s) cut off by the kill restarted from scratch")
    return folder, [first, second]


@pytest.fixture(scope="module")
def runs(sessions, server):
    uri, _ = server
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("attnas")
    return client, experiment, client.search_runs([experiment.experiment_id], max_results=1000)


def test_the_search_joined_the_cluster_and_resumed(sessions, cluster) -> None:
    _, (first, second) = sessions
    for session in (first, second):
        assert any(re.match(r"Ray cluster 127\.0\.0\.1:\d+: 3 nodes, 2 run trials \(2 CPUs, 0 GPUs\)", line)
                   for line in session), session[:5]
        assert any(f"{TRIALS} trials, 2 at once" in line for line in session)  # concurrency from the cluster
    assert any(line.startswith(f"Resuming search {NAME}:") for line in second)
    assert any(f"Search {NAME} finished" in line for line in second) and any("Pareto front (" in line for line in second)


def test_no_trial_lost_or_trained_twice(sessions) -> None:
    _, sessions_lines = sessions
    finished: set[str] = set()
    for session in sessions_lines:
        started_here = {m.group(1) for line in session if (m := STARTED.search(line))}
        assert not started_here & finished, f"finished trials started again: {started_here & finished}"
        finished |= {m.group(1) for line in session if (m := DONE.search(line))}
    assert len({m.group(1) for line in sessions_lines[0] if (m := DONE.search(line))}) >= 2


def test_runs_nested_runs_and_nodes_on_the_server(runs, cluster) -> None:
    client, _, all_runs = runs
    _, workers = cluster
    parents = [r for r in all_runs if r.data.tags.get("attnas.role") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the killed driver's parent run, reused
    parent = parents[0]
    nested = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    ids = [r.data.tags["attnas.trial_id"] for r in nested]
    assert len(ids) == len(set(ids)), "a trial has two MLflow runs"
    searched = [r for r in nested if r.data.tags.get("attnas.role") == "trial"]
    ended = [r for r in searched if r.data.tags.get("attnas.outcome") in ("completed", "early_stopped", "failed")]
    assert len(ended) == TOTAL == parent.data.metrics["trials"]
    archs = [tuple(sorted((k, v) for k, v in r.data.params.items() if k != "optuna_trial")) for r in ended]
    assert len(archs) == len(set(archs)), "an architecture was trained twice"
    nodes = {r.data.tags.get("attnas.node_id") for r in nested if r.info.status == "FINISHED"}
    assert nodes == workers, f"trials ran on {nodes}, the workers are {workers}"
    per_node = Counter((r.data.tags["attnas.role"], r.data.tags["attnas.node_id"][:8]) for r in nested
                       if r.info.status == "FINISHED")
    print(f"\nfinished runs per (role, node): {dict(sorted(per_node.items()))}")
    assert all(r.data.tags.get("attnas.node_ip") == "127.0.0.1" for r in ended)


def test_reports_and_weights_reach_the_server_artifact_store(runs, server) -> None:
    client, experiment, all_runs = runs
    _, artifacts = server
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied: the driver uploads over HTTP
    parent = next(r for r in all_runs if r.data.tags.get("attnas.role") == "search")
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "pareto")} >= {"pareto/pareto.csv"}
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "confirmation")} == {
        "confirmation/confirmed.csv"}
    completed = [r for r in all_runs if r.data.tags.get("attnas.outcome") == "completed"]
    assert completed
    for run in completed:
        assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/weights.safetensors"}
    on_server = {p.name for p in artifacts.rglob("*") if p.is_file()}
    assert {"pareto.csv", "report.html", "confirmed.csv", "weights.safetensors"} <= on_server


def test_the_cluster_outlived_the_driver(cluster, sessions) -> None:
    started, workers = cluster
    assert started.remaining_processes_alive()
    assert {node.node_id for node in started.worker_nodes} == workers
    alive = {node["NodeID"] for node in started.global_state.node_table() if node["Alive"]}
    assert workers <= alive and len(alive) == 3


def test_export_against_the_server(sessions, server, tmp_path: Path) -> None:
    uri, _ = server
    result = subprocess.run([sys.executable, "-m", "search.export", f"search={NAME}", f"mlflow.tracking_uri={uri}",
                             f"out={tmp_path}"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "check __init__.py" in result.stdout and "registered models:/attnas_on_cluster/1" in result.stdout
    package = tmp_path / "attnas_on_cluster"
    assert (package / "__init__.py").is_file() and (package / "model.safetensors").is_file()
    assert (package / "model.onnx").is_file() and (package / "model.pt2").is_file()


def test_without_ray_address_a_local_ray_starts_even_beside_a_cluster(cluster) -> None:
    """The cluster's current-cluster file is where ``ray.init()`` would look (this module's RAY_TMPDIR): the local
    default must still start its own Ray, not join (or fail on) the cluster."""
    code = ("import ray; from search.execution.tuner import ray_runtime\n"
            "with ray_runtime(num_cpus=1):\n"
            "    print(len(ray.nodes()), ray.cluster_resources().get('CPU'))")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["1", "1.0"]
