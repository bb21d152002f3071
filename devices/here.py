"""When a latency table's device is this machine: time whole architectures here as the table's rows were timed.

A search ranked by a table (``latency.table``) reports each confirmed architecture's predicted latency; when the
table was measured on this very machine, :func:`measure_here` also times those architectures the way
``time_bundle.py`` timed the table (ONNX Runtime's CPU provider, the table's threads and batch, each pass followed
by one of the plain backbone, milliseconds at the table's reference speed: ``rel x reference_ms``), so prediction
and measurement sit side by side. "This machine" is judged by what ``time_bundle.py`` records: the CPU model, the
architecture and the logical CPU count.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from backbones import ArchConfig
from devices import target
from devices.bundle import arch_entry, backbone_entry, write_models
from devices.table import LatencyTable

_SAME = ("cpu", "machine", "logical_cpus")  # what must match between the table's device and this one


def is_this_machine(table: LatencyTable) -> bool:
    """Whether ``table`` was measured on a machine like this one (same CPU model, architecture and logical CPUs)."""
    here = target.device_facts()
    return all(table.device.get(key) == here.get(key) for key in _SAME)


def measure_here(table: LatencyTable, archs: Mapping[str, ArchConfig], *, runs: int = target.RUNS,
                 rounds: int = target.ROUNDS, log: Callable[[str], None] = lambda line: None) -> dict[str, float]:
    """Each of ``archs`` (name -> architecture on the table's base) timed here as the table was: name -> ms at the
    table's reference speed (``rel x table.reference_ms``), batch ``table.batch``, ``table.threads`` threads."""
    if not archs:
        return {}
    image = tuple(table.image)
    entries = [backbone_entry(table.base, head=table.base.head, image=image)]
    entries += [arch_entry(arch, name=f"arch/here/{i}", role="held_out", image=image)
                for i, arch in enumerate(archs.values())]
    with tempfile.TemporaryDirectory() as folder:
        bundle = write_models(entries, out=Path(folder), space=table.space, base=table.base, image=image)
        measured = target.measure(bundle, threads=table.threads, batch=table.batch, warmup=target.WARMUP, runs=runs,
                                  rounds=rounds, providers=["CPUExecutionProvider"],
                                  log=lambda line, **_: log(line))
    rows = {row["name"]: row for row in measured["rows"]}
    return {name: rows[f"arch/here/{i}"]["rel"] * table.reference_ms for i, name in enumerate(archs)}
