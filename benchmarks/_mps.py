"""CUDA MPS (Multi-Process Service) for the packing benchmarks: start the control daemon, stop it after.

Under MPS the kernels of several processes on one GPU run concurrently in one shared context instead of taking
turns in time slices (https://docs.nvidia.com/deploy/mps/). Processes started while the daemon runs, with the same
``CUDA_MPS_PIPE_DIRECTORY``, join it; the daemon's folders are set in this process's environment so its children
inherit them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CONTROL = "nvidia-cuda-mps-control"
_START_TIMEOUT_S = 20.0


class MpsDaemon:
    """The MPS control daemon in private pipe and log folders; ``start`` returns None or why it did not start."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="attnas-mps-"))
        self.env = {"CUDA_MPS_PIPE_DIRECTORY": str(self.folder / "pipe"),
                    "CUDA_MPS_LOG_DIRECTORY": str(self.folder / "log")}
        self.started = False
        self._saved: dict[str, str | None] = {}

    def start(self) -> str | None:
        """Start the daemon and check that a CUDA process gets a server; None on success, else the reason."""
        control = shutil.which(_CONTROL)
        if control is None:
            return f"{_CONTROL} is not on the PATH"
        for folder in self.env.values():
            Path(folder).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        done = subprocess.run([control, "-d"], env=env, capture_output=True, text=True, timeout=_START_TIMEOUT_S)
        if done.returncode != 0:
            return f"{_CONTROL} -d exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}"
        self.started = True
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        # a CUDA process makes the daemon start a server; if none answers, MPS does not work on this machine
        probe = subprocess.run([sys.executable, "-c", "import torch; torch.ones(1, device='cuda').sum().item()"],
                               env={**os.environ}, capture_output=True, text=True, timeout=120)
        deadline = time.monotonic() + _START_TIMEOUT_S
        servers = ""
        while time.monotonic() < deadline and not servers:
            servers = self._ask("get_server_list").strip()
            if not servers:
                time.sleep(0.5)
        if probe.returncode != 0 or not servers:
            log = self.folder / "log" / "control.log"
            tail = log.read_text()[-300:] if log.is_file() else ""
            reason = (f"a CUDA process under MPS failed: {probe.stderr.strip()[-300:]}" if probe.returncode != 0
                      else f"the daemon started no server ({tail.strip() or 'no log'})")
            self.stop()
            return reason
        return None

    def stop(self) -> None:
        """Ask the daemon to quit (idempotent) and restore the environment."""
        if self.started:
            self._ask("quit")
            self.started = False
            time.sleep(1.0)  # the server lets go of the GPU
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}

    def _ask(self, command: str) -> str:
        control = shutil.which(_CONTROL) or _CONTROL
        try:
            return subprocess.run([control], input=command + "\n", env={**os.environ, **self.env},
                                  capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            return f"error: {exc}" if command != "get_server_list" else ""
