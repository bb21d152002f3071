"""One search, one driver: the parent run says which process drives it and that it is alive, so that the same
search started a second time (another terminal, another machine on the team's server) is refused with one line
instead of training the same architectures twice under the same parent run.

A search's trials are scheduled by one Ray Tune driver; more workers for one search are more Ray nodes under that
driver (``ray.address=``, docs/cluster.md), not a second driver on the study. While a search runs, a thread of its
driver writes the unix time to the parent run's ``attnas.heartbeat`` tag every :data:`HEARTBEAT_S` (beside
``attnas.driver`` = "HOST PID"). A later command with the same name finds the parent run RUNNING and refuses while
that driver is alive: on the same host, while its process exists and its heartbeat is fresh; from another host,
while the heartbeat is younger than :data:`STALE_S`. A driver that was killed (SIGKILL, a lost machine) stops
beating, so its search can be resumed at once from its own host and after :data:`STALE_S` from any other.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

import mlflow
from mlflow.entities import Run, RunStatus

from search.outcomes import DRIVER_TAG, HEARTBEAT_TAG
from search.settings.errors import UserError

HEARTBEAT_S = 15.0  # how often a running driver says it is alive (s)
STALE_S = 60.0  # a heartbeat older than this (s) is a driver that is gone: four missed beats


@dataclass(frozen=True)
class Driver:
    """The process driving a search, as its parent run's tags say."""

    host: str
    pid: int
    heard: float  # unix time (s) of its last heartbeat

    @classmethod
    def of(cls, run: Run) -> Driver | None:
        tags = run.data.tags
        try:
            host, pid = tags[DRIVER_TAG].rsplit(" ", 1)
            return cls(host=host, pid=int(pid), heard=float(tags[HEARTBEAT_TAG]))
        except (KeyError, ValueError):
            return None

    def alive(self, *, now: float) -> bool:
        fresh = now - self.heard < STALE_S
        return fresh and (self.host != socket.gethostname() or _process_exists(self.pid))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def this_driver() -> dict[str, str]:
    """The tags that name this process as a search's driver, heard now."""
    return {DRIVER_TAG: f"{socket.gethostname()} {os.getpid()}", HEARTBEAT_TAG: f"{time.time():.0f}"}


def refuse_if_driven(run: Run, *, name: str) -> None:
    """Raise :class:`UserError` when ``run`` (a search's parent run) is RUNNING under a live driver other than this
    process."""
    if run.info.status != RunStatus.to_string(RunStatus.RUNNING):
        return
    driver = Driver.of(run)
    now = time.time()
    if driver is None or not driver.alive(now=now) or driver.pid == os.getpid() and driver.host == socket.gethostname():
        return
    raise UserError(
        f"search {name!r} is running now (driven by process {driver.pid} on {driver.host}, alive {now - driver.heard:.0f} s "
        f"ago); one search has one driver: add machines to it by joining them to its Ray cluster (ray.address=, "
        f"docs/cluster.md), start another search with a new name=, or resume this one once it has stopped")


class Heartbeat:
    """A daemon thread that keeps the parent run's ``attnas.heartbeat`` fresh until :meth:`stop`. A failed write
    (the tracking server restarting) is skipped: the next beat tries again."""

    def __init__(self, *, tracking_uri: str, run_id: str) -> None:
        self._client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        self._run_id = run_id
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="attnas-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stopped.wait(HEARTBEAT_S):
            try:
                self._client.set_tag(self._run_id, HEARTBEAT_TAG, f"{time.time():.0f}")
            except Exception:  # noqa: BLE001 - a missed beat is not an error of the search
                pass

    def stop(self) -> None:
        self._stopped.set()
