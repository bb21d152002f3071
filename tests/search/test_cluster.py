"""search.execution.cluster and search.execution.storage without a cluster: reachability, trial slots, the shared-storage check (its
failing branch with a mocked node answer: on one machine every node sees every folder), URI paths, the study's
storage. The real cluster is in tests/e2e/test_cluster_e2e.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from search.execution.cluster import Node, check_storage_shared, reachable_address, trial_nodes, trial_slots
from search.execution.storage import is_uri, join, probe_lock_path, resolve, split
from search.plan_check import study_storage_url
from search.settings.errors import UserError

HEAD = Node(node_id="h" * 56, ip="10.0.0.1", cpus=0, gpus=0)
WORKERS = [Node(node_id="a" * 56, ip="10.0.0.2", cpus=4, gpus=0), Node(node_id="b" * 56, ip="10.0.0.3", cpus=3, gpus=1)]


def test_auto_without_a_cluster_is_one_line() -> None:
    with pytest.raises(UserError, match=r"^ray.address=auto: no running Ray cluster found .*ray start --head"):
        reachable_address("auto", find_auto=lambda: None)


def test_an_address_nothing_listens_on_is_refused_and_auto_says_what_it_found() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=rf"^ray.address=auto \(127.0.0.1:{port}\): no Ray cluster answers there"):
        reachable_address("auto", find_auto=lambda: f"127.0.0.1:{port}")


def test_a_listening_address_is_returned() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert reachable_address(address, find_auto=lambda: None) == address


def test_trial_slots_count_per_node() -> None:
    nodes = [HEAD, *WORKERS]
    assert trial_nodes(nodes, cpu_per_trial=1, gpu_per_trial=0) == WORKERS  # a 0-CPU head runs no trial
    assert trial_slots(WORKERS, cpu_per_trial=2, gpu_per_trial=0) == 2 + 1  # 4 // 2 + 3 // 2: trials never span nodes
    assert trial_nodes(nodes, cpu_per_trial=1, gpu_per_trial=0.5) == WORKERS[1:]
    assert trial_slots(WORKERS[1:], cpu_per_trial=0, gpu_per_trial=0.25) == 4
    assert trial_slots([HEAD], cpu_per_trial=1, gpu_per_trial=0) == 1  # at least one


def test_a_folder_one_node_cannot_see_stops_the_search_with_what_to_pass(tmp_path: Path) -> None:
    storage = tmp_path / "new" / "runs"
    asked = []

    def sees(marker: str, nodes) -> dict[str, bool]:
        asked.append(marker)
        assert Path(marker).is_file()
        return {WORKERS[0].node_id: True, WORKERS[1].node_id: False}  # the second node has its own disk

    with pytest.raises(UserError) as error:
        check_storage_shared(str(storage), WORKERS, sees=sees)
    message = str(error.value)
    assert f"storage={storage}" in message and "1 of the 2 Ray nodes" in message and "10.0.0.3" in message
    assert "s3://" in message and "shared" in message and "\n" not in message
    assert not Path(asked[0]).exists() and not (tmp_path / "new").exists(), "the check leaves nothing behind"


def test_a_shared_folder_or_a_uri_passes(tmp_path: Path) -> None:
    check_storage_shared(str(tmp_path), WORKERS, sees=lambda marker, nodes: {n.node_id: True for n in nodes})
    assert list(tmp_path.iterdir()) == []
    check_storage_shared("s3://bucket/attnas", WORKERS, sees=lambda marker, nodes: pytest.fail("a URI is shared"))


def test_uri_and_folder_locations(tmp_path: Path) -> None:
    assert is_uri("s3://bucket/x") and not is_uri(str(tmp_path))
    assert resolve("gs://bucket/attnas/") == "gs://bucket/attnas"
    assert join("s3://bucket/attnas", "name", "confirm") == "s3://bucket/attnas/name/confirm"
    assert split("s3://bucket/attnas/name") == ("s3://bucket/attnas", "name")
    assert split(join(str(tmp_path), "name")) == (str(tmp_path), "name")
    lock = probe_lock_path("s3://bucket/attnas", name="s1")
    assert lock != probe_lock_path("s3://other/attnas", name="s1") and "bucket" not in str(lock)


def test_study_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert study_storage_url("sqlite:///m/mlflow.db", storage="s3://b/x") == f"sqlite:///{tmp_path / 'm' / 'optuna.db'}"
    assert study_storage_url("http://h:5000", storage=str(tmp_path / "runs")) == \
        f"sqlite:///{tmp_path / 'runs' / 'optuna.db'}"
    assert study_storage_url("http://h:5000", storage="s3://b/x") == f"sqlite:///{tmp_path / 'optuna.db'}"
    given = "postgresql://db.lab/optuna"
    assert study_storage_url("http://h:5000", storage="s3://b/x", given=given) == given
