"""A team on one server, for real: one PostgreSQL behind Optuna and a real ``mlflow server``, two searches at once.

PostgreSQL is Debian's (``initdb`` into a temporary folder, a free port on 127.0.0.1, password authentication), with
two databases: ``mlflow`` (the tracking server's backend store; artifacts proxied to the server's own folder) and
``optuna`` (both searches' studies). Then, as docs/team.md tells a team to run it:

- bad input at start: a wrong password, an unreachable database host, an unreachable tracking server: one line
  each, exit code 2, nothing written;
- the study database waited out: a call made while PostgreSQL is stopped returns once it is back;
- searches ``alpha`` and ``beta`` (the same space) run at once from two folders; ``beta`` gets SIGTERM (a batch
  scheduler's stop) as its first trial finishes and ends with one line and exit code 143, no C++ stack dump; while
  ``alpha`` runs on, ``alpha`` started a second time is refused with one line; PostgreSQL is stopped and started
  again; the tracking server is killed and started again; then the same command resumes ``beta``;
- afterwards: both finished, every trial has exactly one FINISHED MLflow run under its own search's parent, the
  two Optuna studies are separate and complete, and the report and export of each work;
- a third search whose tracking server goes away for good (its client told to retry once) stops with one line and
  exit code 75.

Every process the test starts is stopped by its handle or process group.
"""

from __future__ import annotations

import os
import pwd
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
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest

REPO = Path(__file__).resolve().parents[2]
TRIALS = 3  # searched per search; plus the plain control (the test space lists no other controls)
TOTAL = TRIALS + 1
USER, PASSWORD = "attnas", "team-secret"
FINISHED = re.compile(r"\((\d+)/\d+ finished\)")

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_bin() -> Path | None:
    """Debian's PostgreSQL programs (``apt-get install postgresql``: /usr/lib/postgresql/VERSION/bin), else PATH's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Postgres:
    """A PostgreSQL server in ``folder`` on 127.0.0.1:``port``; as root, run as the ``postgres`` user (initdb
    refuses root)."""

    def __init__(self, folder: Path) -> None:
        self.bin = _postgres_bin()
        self.folder, self.port, self.data = folder, _free_port(), folder / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        (folder / "pw").write_text(PASSWORD)
        self._run("initdb", "-D", self.data, "-U", USER, f"--pwfile={folder / 'pw'}", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8")

    def _run(self, program: str, *args: object) -> None:
        subprocess.run([*self.as_user, str(self.bin / program), *map(str, args)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.folder} -F"  # -F: no fsync, a throwaway test database
        self._run("pg_ctl", "-D", self.data, "-l", self.folder / "log", "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def url(self, database: str, *, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{port or self.port}/{database}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    if _postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # short: the server's socket lives in it
    folder.chmod(0o755)
    server = Postgres(folder)
    server.start()
    try:
        import psycopg

        with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
            for database in ("mlflow", "optuna"):  # apart: both keep their schema version in alembic_version
                connection.execute(f"CREATE DATABASE {database}")
        yield server
    finally:
        try:
            server.stop("immediate")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tracking(postgres: Postgres, mlflow_server, tmp_path_factory: pytest.TempPathFactory):
    """The tracking server on the PostgreSQL backend store (tests/conftest.py's MlflowServer)."""
    return mlflow_server(backend=postgres.url("mlflow"), artifacts=tmp_path_factory.mktemp("artifacts"))


class Search:
    """``python -m search.run`` as a subprocess whose output lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                 terminate_at: int | None = None) -> None:
        """``terminate_at``: send SIGTERM as soon as that many trials have finished (from the reader, so the stop
        comes at that point of the search whatever else the test is waiting for)."""
        self.terminate_at = terminate_at
        self.terminated = threading.Event()  # set once the reader sent SIGTERM
        self.proc = subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=cwd, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._new: queue.Queue[None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if (self.terminate_at is not None and not self.terminated.is_set()
                    and self.finished() >= self.terminate_at):
                self.proc.send_signal(signal.SIGTERM)
                self.terminated.set()
            self._new.put(None)
        self._new.put(None)

    def finished(self) -> int:
        return max([int(m.group(1)) for line in self.lines if (m := FINISHED.search(line))], default=0)

    def wait_for(self, test, timeout: float = 600) -> None:
        """Until ``test(self)`` holds (checked at every new line)."""
        deadline = time.monotonic() + timeout
        while not test(self):
            assert self.proc.poll() is None or not self._new.empty(), "\n".join(self.lines[-40:])
            assert time.monotonic() < deadline, "\n".join(self.lines[-40:])
            try:
                self._new.get(timeout=1)
            except queue.Empty:
                pass

    def end(self, timeout: float = 600) -> int:
        """The exit code; a search still running after ``timeout`` s fails the test with its last lines."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout:.0f} s; its last lines:\n"
                                 + "\n".join(self.lines[-60:])) from None
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            time.sleep(0.2)  # the reader thread takes the last lines


def _command(name: str, *, space: Path, tracking: str, study: str) -> list[str]:
    return [f"space={space}", f"name={name}", f"budget.trials={TRIALS}", "budget.epochs=2", "budget.train_size=512",
            "budget.val_size=256", "latency.runs=10", "latency.batch=0", "train.precision=fp32", "sampler=random",
            "concurrency=1", "confirm.enabled=false", f"mlflow.tracking_uri={tracking}", f"study.storage={study}"]


def _refused(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=cwd, text=True, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "small.yaml"  # the shipped space with the plain control only
    path.write_text((REPO / "spaces" / "fashion_attention.yaml").read_text() + "\ncontrols: {}\n")
    return path


@pytest.fixture(scope="module")
def bad_starts(postgres: Postgres, tracking, space: Path,
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    """The three bad starts, run at once, before any search: (wrong password, database unreachable, tracking
    server unreachable) -> their completed processes."""
    folder = tmp_path_factory.mktemp("bad")
    cases = {
        "password": _command("bad-password", space=space, tracking=tracking.uri,
                             study=postgres.url("optuna", password="wrong")),
        "database": _command("bad-host", space=space, tracking=tracking.uri,
                             study=postgres.url("optuna", port=_free_port())),
        "tracking": _command("bad-tracking", space=space, tracking=f"http://127.0.0.1:{_free_port()}",
                             study=postgres.url("optuna")),
    }
    procs = {key: subprocess.Popen([sys.executable, "-m", "search.run", *args], cwd=folder, text=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE) for key, args in cases.items()}
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def test_bad_starts_are_one_line_exit_2_nothing_written(bad_starts, postgres: Postgres,
                                                        tracking) -> None:
    expected = {"password": ("study.storage=postgresql://attnas:***@", "password authentication failed"),
                "database": ("study.storage=", "cannot be reached"),
                "tracking": ("MLflow tracking server", "unreachable")}
    for key, result in bad_starts.items():
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1, (key, result.returncode, result.stderr[-2000:])
        assert all(part in lines[0] for part in expected[key]), (key, lines[0])
        assert "wrong" not in lines[0]  # the password is not printed
    client = mlflow.MlflowClient(tracking_uri=tracking.uri)
    experiment = client.get_experiment_by_name("attnas")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
    assert optuna.get_all_study_names(storage=postgres.url("optuna")) == []


def test_a_study_call_waits_out_a_database_restart(bad_starts, postgres: Postgres) -> None:
    """A call made while PostgreSQL is stopped returns once it is back (PatientStorage), saying so."""
    import logging

    from search.study.database import open_storage

    storage = open_storage(postgres.url("optuna"))
    study = optuna.create_study(storage=storage, study_name="patience", directions=["maximize"])
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("attnas").addHandler(handler)
    logging.getLogger("attnas").setLevel(logging.INFO)
    postgres.stop()
    threading.Timer(4.0, postgres.start).start()
    try:
        t0 = time.monotonic()
        trial = study.ask()  # made while the database is down
        study.tell(trial, 0.5)
        waited = time.monotonic() - t0
    finally:
        logging.getLogger("attnas").removeHandler(handler)
    assert waited >= 3.0 and study.trials[0].value == 0.5
    assert any("is unreachable" in line and "***" in line for line in said), said
    assert any("is back after" in line for line in said), said
    optuna.delete_study(study_name="patience", storage=postgres.url("optuna"))


def test_a_database_down_past_its_patience_stops_with_one_line(bad_starts, postgres: Postgres) -> None:
    from search.settings.database_url import driver_url, engine_kwargs
    from search.study.database import DatabaseDown, PatientStorage

    url = postgres.url("optuna")
    storage = optuna.storages.RDBStorage(driver_url(url), engine_kwargs=engine_kwargs(url))  # connects: before the stop
    impatient = PatientStorage(lambda: storage, url=postgres.url("optuna"), patience_s=3.0)
    postgres.stop()
    try:
        with pytest.raises(DatabaseDown) as down:
            impatient.get_all_studies()
    finally:
        postgres.start()
    message = str(down.value)
    assert "\n" not in message and PASSWORD not in message and "postgresql://attnas:***@" in message
    assert "was unreachable for" in message


@pytest.fixture(scope="module")
def team(bad_starts, postgres: Postgres, tracking, space: Path,
         tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The two searches with the faults (module docstring); what happened, for the tests below."""
    study = postgres.url("optuna")
    folders = {name: tmp_path_factory.mktemp(name) for name in ("alpha", "beta")}  # two users' machines
    commands = {name: _command(name, space=space, tracking=tracking.uri, study=study) for name in folders}
    alpha = Search(commands["alpha"], folders["alpha"])
    beta = Search(commands["beta"], folders["beta"], terminate_at=1)  # a batch scheduler's stop, mid-search
    happened: dict = {}
    try:
        alpha.wait_for(lambda s: s.finished() >= 1)
        happened["second_alpha"] = _refused(commands["alpha"], tmp_path_factory.mktemp("alpha-again"))
        beta.wait_for(lambda s: s.terminated.is_set())  # its first trial can finish well after alpha's on a busy machine
        happened["beta_stopped"] = beta.end(timeout=300)  # before the outage: its stop records on a live store
        postgres.stop()  # the study and the tracking server's store, gone for a while
        time.sleep(15)
        postgres.start()
        alpha.wait_for(lambda s: s.finished() >= 2)
        tracking.kill()
        time.sleep(3)
        tracking.start()
        happened["alpha"] = alpha.end()
        beta_again = Search(commands["beta"], folders["beta"])
        happened["beta_resumed"] = beta_again.end()
    finally:
        for search in (alpha, beta):
            if search.proc.poll() is None:
                search.proc.kill()
    happened["lines"] = {"alpha": alpha.lines, "beta": beta.lines, "beta_again": beta_again.lines}
    happened["folders"] = folders
    waited = [line for name in ("alpha", "beta") for line in happened["lines"][name]
              if "study database" in line]
    print(f"\nteam: alpha {alpha.finished()}/{TOTAL}, beta stopped at {beta.finished()}/{TOTAL} by SIGTERM "
          f"(exit {happened['beta_stopped']}) and resumed; what the searches said of the database outage: {waited}")
    return happened


def test_the_same_search_started_twice_is_refused(team) -> None:
    second = team["second_alpha"]
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 2 and len(lines) == 1, second.stderr[-2000:]
    assert "search 'alpha' is running now" in lines[0] and "ray.address" in lines[0]


def test_sigterm_ends_a_search_like_ctrl_c_and_it_resumes(team) -> None:
    lines = team["lines"]
    assert team["beta_stopped"] == 143, lines["beta"][-20:]
    assert lines["beta"][-1].startswith("Stopped by SIGTERM"), lines["beta"][-5:]
    assert not any("SIGTERM received" in line or "PC: @" in line for line in lines["beta"])
    assert team["beta_resumed"] == 0, lines["beta_again"][-40:]
    assert any(line.startswith("Resuming search beta:") for line in lines["beta_again"])


def test_both_searches_finished_through_the_faults(team) -> None:
    lines = team["lines"]
    assert team["alpha"] == 0, lines["alpha"][-40:]
    for name, session in (("alpha", lines["alpha"]), ("beta", lines["beta_again"])):
        assert any(f"Search {name} finished" in line for line in session), session[-20:]


def test_every_trial_has_one_finished_run_under_its_own_parent(team, tracking) -> None:
    client = mlflow.MlflowClient(tracking_uri=tracking.uri)
    experiment = client.get_experiment_by_name("attnas")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.data.tags["attnas.search"]: r for r in runs if r.data.tags.get("attnas.role") == "search"}
    assert sorted(parents) == ["alpha", "beta"] and all(r.info.status == "FINISHED" for r in parents.values())
    for name, parent in parents.items():
        nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert {r.data.tags["attnas.search"] for r in nested} == {name}
        trials = [r for r in nested if r.data.tags.get("attnas.role") == "trial"]
        ids = [r.data.tags["attnas.trial_id"] for r in trials]
        assert len(ids) == len(set(ids)) == TOTAL == parent.data.metrics["trials"], (name, ids)
        assert all(r.info.status == "FINISHED" for r in trials), [(r.info.run_name, r.info.status) for r in trials]
        archs = [tuple(sorted((k, v) for k, v in r.data.params.items() if k != "optuna_trial")) for r in trials]
        assert len(archs) == len(set(archs)), f"{name}: an architecture was trained twice"
        assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_the_two_studies_are_separate_and_complete(team, postgres: Postgres) -> None:
    storage = postgres.url("optuna")
    assert sorted(optuna.get_all_study_names(storage=storage)) == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        trials = optuna.load_study(study_name=name, storage=storage).trials
        ran = [t for t in trials if "duplicate_of" not in t.user_attrs and "cut_off" not in t.user_attrs]
        assert len(ran) == TOTAL, (name, [(t.number, t.state) for t in trials])
        assert all(t.state.is_finished() for t in trials), (name, [(t.number, t.state) for t in trials])


def test_both_export_from_the_server(team, tracking, tmp_path: Path) -> None:
    procs = {name: subprocess.Popen([sys.executable, "-m", "search.export", f"search={name}",
                                     f"mlflow.tracking_uri={tracking.uri}", f"out={tmp_path / name}"],
                                    cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("alpha", "beta")}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert f"registered models:/attnas_{name}/1" in out
        assert (tmp_path / name / f"attnas_{name}" / "__init__.py").is_file()


def test_a_tracking_server_gone_for_good_stops_the_search_with_one_line(team, postgres: Postgres,
                                                                       tracking, space: Path,
                                                                       tmp_path: Path) -> None:
    """Past the MLflow client's retries (about 4 minutes by default; 1 retry here) the search stops with one line."""
    gamma = Search(_command("gamma", space=space, tracking=tracking.uri, study=postgres.url("optuna")), tmp_path,
                   env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"})
    try:
        gamma.wait_for(lambda s: s.finished() >= 1)
        tracking.kill()
        code = gamma.end(timeout=300)
    finally:
        tracking.start()
    assert code == 75, gamma.lines[-30:]
    assert gamma.lines[-1].startswith("The search stopped: the MLflow tracking server did not answer (http://"), \
        gamma.lines[-5:]
    assert gamma.lines[-1].endswith("rerun the same command to resume.")
