"""The exclusive probe slot (trials.ProbeSlot): a no-op without a path; with one, a prober excludes workers, is not
starved by them, and run_trial's probe and training take it.

flock locks belong to an open file, so two ProbeSlot objects in one process exclude each other exactly as two
processes do; most tests use threads (cheap), one uses a second process (what a search does)."""

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from trials import ProbeConfig, ProbeSlot, TrainConfig, load_dataset, run_trial
from trials.slot import TURNSTILE_SUFFIX


class Worker(threading.Thread):
    """A trial's training loop in miniature: holds the slot shared and pauses before each 'step' (a sleep)."""

    def __init__(self, path: Path, *, step_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.path, self.step_s = path, step_s
        self.steps: list[tuple[float, float]] = []  # (start, end) of every step, perf_counter seconds
        self.started_holding = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with ProbeSlot(self.path) as slot, slot.shared() as pause:
            self.started_holding.set()
            while not self.stop.is_set():
                pause()
                start = time.perf_counter()
                time.sleep(self.step_s)
                self.steps.append((start, time.perf_counter()))


def test_without_a_path_the_slot_is_a_no_op(tmp_path):
    slot = ProbeSlot(None)
    assert not slot.enabled
    with slot, slot.exclusive():
        with slot.shared() as pause:  # no reentrancy check either: nothing is held
            pause()
    assert list(tmp_path.iterdir()) == []


def test_folder_and_files_are_created_on_first_use(tmp_path):
    path = tmp_path / "runs" / "search" / ".probe.lock"
    with ProbeSlot(path) as slot:
        assert not path.parent.exists()  # nothing happens until the slot is taken
        with slot.exclusive():
            pass
    assert path.exists() and Path(f"{path}{TURNSTILE_SUFFIX}").exists()


def test_the_slot_is_not_reentrant(tmp_path):
    with ProbeSlot(tmp_path / "lock") as slot, slot.shared():
        with pytest.raises(RuntimeError, match="not reentrant"), slot.exclusive():
            pass
    with ProbeSlot(tmp_path / "lock") as slot, slot.exclusive():  # released on the way out: usable again
        pass


def test_while_probing_no_worker_steps_and_workers_share(tmp_path):
    path = tmp_path / ".probe.lock"
    workers = [Worker(path), Worker(path)]
    for w in workers:
        w.start()
    for w in workers:  # both hold the slot shared at once
        assert w.started_holding.wait(5)
    time.sleep(0.05)
    with ProbeSlot(path) as slot:
        asked = time.perf_counter()
        with slot.exclusive():
            held_from = time.perf_counter()
            time.sleep(0.2)
            held_to = time.perf_counter()
    time.sleep(0.05)
    for w in workers:
        w.stop.set()
        w.join(5)
    assert held_from - asked < 1.0  # two workers that never let go of the shared lock do not starve the prober
    for w in workers:
        assert any(end <= held_from for _, end in w.steps) and any(start >= held_to for start, _ in w.steps)
        overlapping = [(s, e) for s, e in w.steps if s < held_to and e > held_from]
        assert overlapping == [], "a worker stepped while the slot was held exclusively"


def test_two_probers_never_hold_it_at_once(tmp_path):
    path = tmp_path / ".probe.lock"
    intervals: list[tuple[float, float]] = []

    def probe() -> None:
        with ProbeSlot(path) as slot, slot.exclusive():
            start = time.perf_counter()
            time.sleep(0.05)
            intervals.append((start, time.perf_counter()))

    threads = [threading.Thread(target=probe) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    intervals.sort()
    assert len(intervals) == 3 and all(a_end <= b_start for (_, a_end), (b_start, _) in zip(intervals, intervals[1:]))


def test_a_probe_in_another_process_pauses_training_here(tmp_path):
    """Across processes, as in a search: another process probes for 0.5 s while this one trains steps."""
    path = tmp_path / ".probe.lock"
    ready, done = tmp_path / "ready", tmp_path / "done"
    prober = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from trials import ProbeSlot
        with ProbeSlot({str(path)!r}) as slot, slot.exclusive():
            start = time.time()
            Path({str(ready)!r}).touch()
            time.sleep(0.5)
            Path({str(done)!r}).write_text(f"{{start}} {{time.time()}}")
    """)
    worker = Worker(path)
    worker.start()
    assert worker.started_holding.wait(5)
    process = subprocess.Popen([sys.executable, "-c", prober], cwd=Path(__file__).parents[2])
    assert process.wait(60) == 0
    worker.stop.set()
    worker.join(5)
    start, end = (float(x) for x in done.read_text().split())
    offset = time.time() - time.perf_counter()  # the worker timed with perf_counter
    steps = [(s + offset, e + offset) for s, e in worker.steps]
    assert not [(s, e) for s, e in steps if s < end - 0.005 and e > start + 0.005]  # 5 ms: clock conversion
    assert any(s >= end for s, _ in steps)  # it went on afterwards


def test_run_trial_takes_the_slot_for_its_probe_and_its_steps(tmp_path, tiny_cnn):
    data = load_dataset("synthetic", train_size=256, val_size=64, seed=0)
    path = tmp_path / "runs" / "s" / ".probe.lock"
    kwargs = dict(data=data, train=TrainConfig(epochs=1, batch_size=64), probe=ProbeConfig(runs=3, warmup=1, batch=0),
                  device="cpu")
    # Another trial probes for 0.5 s: this one may neither time nor train meanwhile, so it takes >= 0.5 s longer.
    other = ProbeSlot(path)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.exclusive():
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(5)
    finished = threading.Event()
    results = []
    trial = threading.Thread(target=lambda: (results.append(run_trial(model=tiny_cnn(), probe_lock=path, **kwargs)),
                                             finished.set()))
    trial.start()
    time.sleep(0.5)
    assert not finished.is_set()  # waiting for the slot
    release.set()
    holder.join(5)
    trial.join(60)
    other.close()
    assert finished.is_set() and results[0].metrics["epoch"] == 1 and results[0].metrics["latency_ms"] > 0
    assert path.exists()
