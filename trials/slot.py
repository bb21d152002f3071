"""The exclusive probe slot: while one trial times its model, no other trial of the same search computes.

Trials of a search that share a machine (two 1-CPU trials on a 2-core VM, four trials on one GPU) disturb each
other's latency probe: the neighbour's training steps take the shared caches, memory bandwidth, clock headroom and,
for batch-1 GPU latency, which is bound by kernel launches, the CPU: the same architecture's ``latency_ms`` moves
between trials (BENCHMARKS.md sections 3 and 6, latency repeatability). `ProbeSlot` is a cross-process
readers–writer lock on two files in the search's folder (``fcntl.flock``; Linux/macOS):

- a *worker* (`ProbeSlot.shared`) holds the lock shared while it trains an epoch or validates, and calls the
  ``pause()`` it is given before every step or batch; any number of workers compute at once, as before;
- a *prober* (`ProbeSlot.exclusive`) holds it exclusively while it times: it waits until every worker has reached
  its next pause (at most one training step), and no worker goes on until the probe is done.

flock alone would starve the prober: Linux grants a new shared lock while an exclusive request waits. So the prober
first takes a second file, the *turnstile*, exclusively and keeps it until it is done; a worker's ``pause()``
tests the turnstile without waiting (two ``flock`` calls, negligible next to a training step; BENCHMARKS.md
section 6 has the cost), and when it is taken lets go of the lock and queues on the turnstile behind the prober; a worker
starting a block passes through the turnstile too. Probers queue on the turnstile, so two trials never time at
once. On CUDA a worker synchronises its device before it lets go, so none of its queued kernels runs during a probe.

Besides the pauses, the cost is the probe's own time, during which the other trials wait. Nothing is held between
blocks (while a trial reports to Ray, builds its model, saves a checkpoint), so a trial that Ray abandons there
blocks nobody; a killed process releases its locks (the kernel drops flock locks when the file closes). With no
path the slot is a no-op (``run_trial`` on its own, tests, a search that does not pass one).
One slot per search covers all the machine's devices: on a multi-GPU machine probes on different GPUs queue too,
because batch-1 GPU latency depends on the host CPU that the other trials also use. The lock files must be on a
local file system (on a shared NFS folder, trials of different machines would wait for each other).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

TURNSTILE_SUFFIX = ".turnstile"  # the turnstile file is the lock file's path + this


class ProbeSlot:
    """A cross-process readers–writer lock with a turnstile; see the module docstring. Use it in a ``with`` block
    (or call `close`): the files are opened on first use and closed at the end.

    path: the lock file (created with its folder on first use), e.g. ``runs/NAME/.probe.lock``; None = no-op.
    device: the device this process trains on; on CUDA, `shared` synchronises it before it lets a waiting prober in.
    Not reentrant: taking the slot while this object already holds it raises RuntimeError.
    """

    def __init__(self, path: str | os.PathLike | None, *, device: torch.device | str = "cpu") -> None:
        self.path = None if path is None else Path(path)
        self.device = torch.device(device)
        self._lock: int | None = None  # file descriptors, opened lazily
        self._turnstile: int | None = None
        self._held = False

    @property
    def enabled(self) -> bool:
        """Whether this slot locks anything (a path was given)."""
        return self.path is not None

    def __enter__(self) -> ProbeSlot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the lock files (which drops any lock still held); the slot reopens them if used again."""
        for fd in (self._lock, self._turnstile):
            if fd is not None:
                os.close(fd)
        self._lock = self._turnstile = None
        self._held = False

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The prober's side: inside the block no other holder of this slot's path computes (waits until they stop)."""
        if self.path is None:
            yield
            return
        lock, turnstile = self._enter()
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX)  # from now on workers queue behind us (and other probers wait)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)  # wait for the steps in flight to end
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            finally:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        finally:
            self._held = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[Callable[[], None]]:
        """The worker's side: hold the slot shared for the block (a training epoch's steps, a validation pass), and
        call the yielded ``pause()`` before each step or batch: when a prober waits it lets go, waits until the
        prober is done and takes the slot again; otherwise it costs two ``flock`` calls. Entering waits while a
        prober holds or waits for the slot; any number of workers hold it at once. On CUDA the device is
        synchronised before the slot is let go (at a pause for a prober, and at the end of the block), so no queued
        kernel of this process runs during a probe.
        """
        if self.path is None:
            yield _no_pause
            return
        lock, turnstile = self._enter()
        on_cuda = self.device.type == "cuda"

        def pause() -> None:
            if not self._turnstile_taken(turnstile):
                return
            if on_cuda:
                torch.cuda.synchronize(self.device)  # finish our queued kernels before the probe starts
            fcntl.flock(lock, fcntl.LOCK_UN)
            self._take_shared(lock, turnstile)

        try:
            self._take_shared(lock, turnstile)
            try:
                yield pause
            finally:
                try:
                    if on_cuda:
                        torch.cuda.synchronize(self.device)  # once per block: nothing of ours is left queued
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            self._held = False

    @staticmethod
    def _take_shared(lock: int, turnstile: int) -> None:
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # pass through the turnstile: blocks while a prober holds it
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_SH)

    def _enter(self) -> tuple[int, int]:
        if self._held:
            raise RuntimeError(f"ProbeSlot({self.path}) is already held by this object (the slot is not reentrant)")
        if self._lock is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)  # the search's folder may not exist yet
            self._turnstile = os.open(f"{self.path}{TURNSTILE_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o644)
            self._lock = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._held = True
        assert self._turnstile is not None
        return self._lock, self._turnstile

    @staticmethod
    def _turnstile_taken(turnstile: int) -> bool:
        """Whether someone holds the turnstile now (a prober, or a worker passing through)."""
        try:
            fcntl.flock(turnstile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        return False


def _no_pause() -> None:
    """`ProbeSlot.shared`'s pause when the slot is a no-op."""
