"""Resume after SIGKILL, for real: one search killed at three points, rerun each time, then checked.

Kill points: (1) before the first trial ends, (2) mid-search after two trials finished (by SIGINT, as Ctrl-C: the
search stops there with exit code 130 instead of going on to confirm a partial front), (3) during the final
Pareto/report step, (4) during the confirmation phase, after its first runs finished. Each rerun is the same command (same ``name=``). Afterwards: every trial ran once to its end
(no trial finished in one session starts again in a later one), Ray and MLflow agree on the trials, each trial has
exactly one MLflow run, there is one parent run, and nothing is left RUNNING.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[2]
TRIALS = 5
CONTROLS = 3  # plain, se_r16, cbam_r16_k7
EPOCHS = 2
SEEDS = 2  # confirmation seeds; confirm.top_k=1: the plain backbone and up to 1 pick confirmed (CPU: confirm.controls=plain)
CONFIRMED_CONTROLS = 1
COMMAND = [sys.executable, "-m", "search.run", "space=fashion_attention", "name=crashy", f"budget.trials={TRIALS}",
           f"budget.epochs={EPOCHS}", "budget.train_size=384", "budget.val_size=128", "latency.runs=5",
           "sampler=tpe", "confirm.top_k=1", f"confirm.seeds={SEEDS}", f"confirm.max_seeds={SEEDS}", "train.precision=fp32",
           "data.test_size=500"]
DONE = re.compile(r"\] +(\w+) (done|stopped early by ASHA|FAILED)")
STARTED = re.compile(r"trial \d+/\d+ (\w+) (start|restarts after the crash)")

pytestmark = pytest.mark.e2e


def _run_until(cwd: Path, pattern: str | None, *, env: dict | None = None, timeout: float = 600,
               sig: signal.Signals = signal.SIGKILL) -> list[str]:
    """Run the search; send ``sig`` to the driver as soon as a stdout line matches ``pattern`` (None: run to the
    end). A SIGINT (Ctrl-C) must end the whole command with exit code 130, as a last line of the session."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.Popen(COMMAND, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line.rstrip("\n"))
        if pattern is not None and re.search(pattern, line):
            os.kill(proc.pid, sig)
            while sig == signal.SIGINT and (line := lines.get(timeout=120)) is not None:  # it ends by itself
                seen.append(line.rstrip("\n"))
            proc.wait(timeout=120)
            time.sleep(2)  # let the orphaned Ray processes notice their driver is gone
            assert sig != signal.SIGINT or proc.returncode == 130, (proc.returncode, seen[-10:])
            return seen
    proc.wait(timeout=60)
    assert pattern is None, f"never saw {pattern!r}:\n" + "\n".join(seen[-30:])
    assert proc.returncode == 0, "\n".join(seen[-30:])
    return seen


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    folder = tmp_path_factory.mktemp("resume")
    runs = [
        _run_until(folder, r"trial 1/\d+ \w+ start"),                              # 1: before any trial ends
        _run_until(folder, r"\((2|3)/\d+ finished\)", sig=signal.SIGINT),        # 2: mid-search, by Ctrl-C
        _run_until(folder, r"Computing the Pareto front"),                        # 3: at the final step
        _run_until(folder, r"trial 3/\d+ \w+ start \(confirm"),                    # 4: confirmation under way
        _run_until(folder, None),                                                 # finish
    ]
    return folder, runs


def test_each_rerun_resumes_and_the_search_finishes(sessions) -> None:
    _, runs = sessions
    assert not any("Resuming search" in line for line in runs[0])
    for later in runs[1:]:
        assert any(line.startswith("Resuming search crashy:") for line in later), later[:5]
    assert any("Search crashy finished" in line for line in runs[-1])
    assert any("Pareto front (" in line for line in runs[-1])


def test_ctrl_c_stops_the_search_before_its_front_and_confirmation(sessions) -> None:
    _, runs = sessions
    assert not any("Computing the Pareto front" in line or "Confirmation" in line for line in runs[1]), runs[1][-10:]


def test_no_finished_trial_runs_again(sessions) -> None:
    _, runs = sessions
    finished: set[str] = set()
    for session in runs:
        started_here = {m.group(1) for line in session if (m := STARTED.search(line))}
        assert not started_here & finished, f"finished trials started again: {started_here & finished}"
        finished |= {m.group(1) for line in session if (m := DONE.search(line))}
    confirmed = {line.split("(confirm ")[1].rstrip(")").split(")")[0] for session in runs for line in session
                 if "start (confirm " in line}
    assert len(finished) == TRIALS + CONTROLS + len(confirmed)
    assert SEEDS * CONFIRMED_CONTROLS <= len(confirmed) <= SEEDS * (CONFIRMED_CONTROLS + 1)


def test_one_parent_one_run_per_trial_nothing_left_running(sessions) -> None:
    folder, _ = sessions
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("attnas.role") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    ids = [r.data.tags["attnas.trial_id"] for r in trials]
    assert len(ids) == len(set(ids)), "a trial has two MLflow runs"
    assert all(r.info.status in ("FINISHED", "FAILED", "KILLED") for r in trials)
    searched = [r for r in trials if r.data.tags.get("attnas.role") == "trial"]
    finished = [r for r in searched if r.data.tags.get("attnas.outcome") in ("completed", "early_stopped", "failed")]
    assert len(finished) == TRIALS + CONTROLS == parent.data.metrics["trials"]
    confirm = [r for r in trials if r.data.tags.get("attnas.role") == "confirm"]
    keys = [(r.data.tags["attnas.confirm_of"], r.data.tags["attnas.seed"]) for r in confirm
            if r.info.status == "FINISHED"]
    assert len(keys) == len(set(keys)), "a confirmation (architecture, seed) was trained to its end twice"
    assert len({k[0] for k in keys}) in (CONFIRMED_CONTROLS, CONFIRMED_CONTROLS + 1) and len(keys) == SEEDS * len({k[0] for k in keys})
    # a run the kill cut off before Ray recorded it is closed KILLED; its (architecture, seed) ran again, once
    assert all(r.info.status in ("FINISHED", "KILLED") for r in confirm)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "confirmation")} == {
        "confirmation/confirmed.csv"}
    # A trial cut off by a kill restarts from scratch; its val_acc history then has each epoch once per attempt.
    for run in finished:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")]
        assert steps and max(steps) == int(run.data.tags["attnas.epochs_run"])
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "pareto")} >= {"pareto/pareto.csv"}


def test_ray_and_optuna_state_agree(sessions) -> None:
    """The Optuna study (in its RDB storage) has one trained trial per Ray trial, none left running."""
    folder, _ = sessions
    import optuna
    from ray.tune import ExperimentAnalysis

    from search.study.searcher import CUT_OFF_ATTR, RAY_TRIAL_ATTR

    analysis = ExperimentAnalysis(str(folder / "runs" / "crashy"))
    assert len(analysis.trials) == TRIALS + CONTROLS
    assert all(t.status in ("TERMINATED", "ERROR") for t in analysis.trials)
    study = optuna.load_study(study_name="crashy", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert "RUNNING" not in [t.state.name for t in study.trials]
    ran = {t.user_attrs[RAY_TRIAL_ATTR] for t in study.trials
           if RAY_TRIAL_ATTR in t.user_attrs and not t.user_attrs.get(CUT_OFF_ATTR)}
    assert ran == {t.trial_id for t in analysis.trials}, (ran, [t.trial_id for t in analysis.trials])
