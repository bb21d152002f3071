"""The team rules without a server: the database URL's rules, one driver per search, SIGTERM as Ctrl-C.

The real PostgreSQL and mlflow server run in ``tests/e2e/test_team_e2e.py``; here a real SQLite MLflow store, a
real closed port and a real signal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import sqlalchemy.exc
from optuna.exceptions import StorageInternalError

from search.execution import signals
from search.execution.signals import EXIT_TERMINATED, Terminated, raise_if_stopped, stop_on_signals
from search.outcomes import DRIVER_TAG, HEARTBEAT_TAG, ROLE_TAG, SEARCH_ROLE, SEARCH_TAG
from search.settings.database_url import check_storage, is_connection_error, redact
from search.settings.errors import UserError
from search.tracking.driver import STALE_S, Driver, refuse_if_driven
from search.tracking.parent import EXPERIMENT_KIND_TAG, TRAINING_KIND, SearchRun, experiment_id


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_redact_hides_the_password_only() -> None:
    assert redact("postgresql://ana:s3cr%40t!@db.lab:5432/optuna") == "postgresql://ana:***@db.lab:5432/optuna"
    assert redact("postgresql://ana@db.lab/optuna") == "postgresql://ana@db.lab/optuna"
    assert redact("sqlite:///optuna.db") == "sqlite:///optuna.db"


def test_check_storage_names_the_reason_in_one_line() -> None:
    reason = check_storage(f"postgresql://ana:pw@127.0.0.1:{_closed_port()}/optuna")
    assert reason is not None and "\n" not in reason and "refused" in reason.lower()
    assert check_storage("sqlite:///anything.db") is None  # made on first use


def test_connection_errors_are_told_apart_from_refused_queries() -> None:
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    wrapped = StorageInternalError("An exception is raised during the commit.")
    wrapped.__cause__ = lost
    refused = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert is_connection_error(lost) and is_connection_error(wrapped)
    assert not is_connection_error(refused) and not is_connection_error(ValueError("x"))


def test_a_driver_is_alive_while_its_process_exists_and_beats() -> None:
    here, now = socket.gethostname(), time.time()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert Driver(host=here, pid=os.getppid(), heard=now - 5).alive(now=now)
    assert not Driver(host=here, pid=dead.pid, heard=now - 5).alive(now=now)  # killed: resumable at once
    assert not Driver(host=here, pid=os.getppid(), heard=now - STALE_S - 1).alive(now=now)
    assert Driver(host="elsewhere", pid=1, heard=now - 5).alive(now=now)
    assert not Driver(host="elsewhere", pid=1, heard=now - STALE_S - 1).alive(now=now)  # gone: resumable


def _parent(client: mlflow.MlflowClient, experiment: str, name: str, *, pid: int):
    run = client.create_run(experiment, run_name=name, tags={
        ROLE_TAG: SEARCH_ROLE, SEARCH_TAG: name, DRIVER_TAG: f"{socket.gethostname()} {pid}",
        HEARTBEAT_TAG: f"{time.time():.0f}"})
    return client.get_run(run.info.run_id)


def test_a_running_search_refuses_a_second_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("attnas", artifact_location=(tmp_path / "art").as_uri())
    live = _parent(client, experiment, "busy", pid=os.getppid())  # the process that runs pytest: alive
    with pytest.raises(UserError, match=r"search 'busy' is running now \(driven by process \d+ on .*ray\.address="):
        refuse_if_driven(live, name="busy")
    with pytest.raises(UserError, match="is running now"):  # through the parent run, before anything is written
        with SearchRun(tracking_uri=uri, experiment="attnas", name="busy", params={}, tags={}):
            pass
    assert client.get_run(live.info.run_id).info.status == "RUNNING"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed = _parent(client, experiment, "crashed", pid=dead.pid)
    refuse_if_driven(crashed, name="crashed")  # a killed driver: resumable at once from its host
    with SearchRun(tracking_uri=uri, experiment="attnas", name="crashed", params={}, tags={}) as search:
        assert search.resumed and search.run_id == crashed.info.run_id
        assert client.get_run(search.run_id).data.tags[DRIVER_TAG].endswith(f" {os.getpid()}")
    assert client.get_run(crashed.info.run_id).info.status == "FINISHED"


def test_sigterm_raises_terminated_a_keyboard_interrupt_and_again_when_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(signals, "_received", [])
    try:
        stop_on_signals()
        raise_if_stopped()  # nothing received: nothing raised
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode
        os.kill(os.getpid(), signal.SIGTERM)  # repeated while stopping: ignored
        time.sleep(0.1)
        with pytest.raises(Terminated):  # what a finalizer dropped comes back at the next step of Tune's loop
            raise_if_stopped()
        assert issubclass(Terminated, KeyboardInterrupt) and EXIT_TERMINATED == 143
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _RacedClient(mlflow.MlflowClient):
    """A real client whose first write of each experiment tag meets another search's write of it: the other write
    lands, and this one fails on the primary key, as on PostgreSQL when two searches start at once."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.raced: set[str] = set()

    def set_experiment_tag(self, experiment_id, key, value) -> None:
        if key not in self.raced:
            self.raced.add(key)
            super().set_experiment_tag(experiment_id, key, "the other search's value")
            raise mlflow.exceptions.MlflowException(
                'duplicate key value violates unique constraint "experiment_tag_pk"', error_code="BAD_REQUEST")
        super().set_experiment_tag(experiment_id, key, value)


def test_two_searches_tagging_the_experiment_at_once_both_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = _RacedClient(tracking_uri=uri)
    found = experiment_id(client, name="attnas", tracking_uri=uri)
    assert client.get_experiment(found).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND
    assert len(client.raced) == 2  # both tags met the race and were written again


def test_another_failure_to_tag_the_experiment_is_raised(tmp_path: Path, monkeypatch) -> None:
    class Refused(mlflow.MlflowClient):
        def set_experiment_tag(self, experiment_id, key, value) -> None:
            raise mlflow.exceptions.MlflowException("permission denied", error_code="PERMISSION_DENIED")

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(mlflow.exceptions.MlflowException, match="permission denied"):
        experiment_id(Refused(tracking_uri=uri), name="attnas", tracking_uri=uri)
