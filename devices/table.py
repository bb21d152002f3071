"""Read a latency table (what ``time_bundle.py`` wrote on the target) and check it belongs to the space at hand.

Every check here ends in :class:`TableError`, one line naming the file and what is wrong with it: a missing or
unreadable file, another format, a malformed row, or a table measured for another space or backbone.

A row's milliseconds are taken at the reference's typical speed: ``rel`` (the row's median over the reference
backbone's median, timed interleaved) times the median of the reference over the whole table. On a machine whose
speed drifts this repeats far better than each row's own median (``devices.target``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbones import ArchConfig
from devices.target import FORMAT
from devices.variants import Shape

KINDS = ("backbone", "module", "arch")  # what a row times: a plain backbone (per head), one module, a whole model
ROLES = ("calibration", "held_out")  # what a whole model's row is for
_HEADER = ("bundle_id", "space", "base", "image", "reference", "reference_ms", "batch", "threads", "device", "date",
           "rows")
_ROW = ("name", "kind", "input", "median_ms", "iqr_ms", "rel")


class TableError(ValueError):
    """A latency table file cannot be used here; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class MeasuredArch:
    """A whole architecture timed on the target."""

    role: str  # calibration | held_out
    arch: ArchConfig
    ms: float  # at the reference's typical speed (module docstring)


@dataclass(frozen=True)
class LatencyTable:
    """One device's latency table for one space on one backbone."""

    path: str
    space: str  # the space's name
    base: ArchConfig  # the plain architecture it was measured on (backbone, sizes, small_input, default head)
    image: Shape  # (C, H, W) of the input images
    batch: int  # images per timed pass (1: the figures are latency_ms)
    threads: int  # ONNX Runtime intra-op threads on the target
    reference_ms: float  # median of the reference backbone over the whole table, ms
    device: Mapping[str, Any]  # what time_bundle.py says about the target (cpu, machine, versions)
    date: str
    load_average: Mapping[str, Any]  # 1/5/15-min load averages on the target at the start and end of timing
    costs: Mapping[str, float]  # backbone / module key (devices.variants) -> ms
    archs: tuple[MeasuredArch, ...]

    def by_role(self, role: str) -> list[MeasuredArch]:
        return [a for a in self.archs if a.role == role]

    def describe(self) -> str:
        """One line: which device, runtime, threads and batch, when, and what it covers."""
        return (f"{self.device.get('cpu', '?')}, onnxruntime {self.device.get('onnxruntime', '?')}, "
                f"{self.threads} thread(s), batch {self.batch}, {self.date}; space {self.space} on "
                f"{self.base.backbone}, "
                f"{len(self.costs)} backbone/module rows, {len(self.archs)} whole architectures")


def _number(row: Mapping[str, Any], key: str, *, where: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise TableError(f"{where}: {key}={value!r} must be a finite number >= 0")
    return float(value)


def _row(row: Any, *, index: int, path: str) -> dict:
    where = f"latency table {path}: row {index}"
    if not isinstance(row, Mapping):
        raise TableError(f"{where} is not an object with keys {', '.join(_ROW)}")
    if missing := [k for k in _ROW if k not in row]:
        raise TableError(f"{where} ({row.get('name', '?')}) lacks {', '.join(missing)}")
    where = f"{where} ({row['name']})"
    if row["kind"] not in KINDS:
        raise TableError(f"{where}: unknown kind {row['kind']!r}; valid: {', '.join(KINDS)}")
    for key in ("median_ms", "iqr_ms"):
        _number(row, key, where=where)
    if _number(row, "rel", where=where) == 0:
        raise TableError(f"{where}: rel=0; a timed model takes time")
    if row["kind"] == "arch":
        if row.get("role") not in ROLES:
            raise TableError(f"{where}: role={row.get('role')!r}; valid: {', '.join(ROLES)}")
        try:
            ArchConfig.from_dict(row.get("arch"))
        except (TypeError, ValueError) as err:
            raise TableError(f"{where}: arch: {err}") from None
    return dict(row)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise TableError(f"latency table {path} not found (time_bundle.py writes it on the target)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TableError(f"latency table {path} is not readable JSON ({' '.join(str(err).split())})") from None
    if not isinstance(raw, Mapping) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, Mapping) else type(raw).__name__
        raise TableError(f"latency table {path} has format {found!r}, not {FORMAT!r}")
    if missing := [k for k in _HEADER if k not in raw]:
        raise TableError(f"latency table {path} lacks {', '.join(missing)}")
    return raw


def load_table(path: str | Path, *, space: str | None = None, base: ArchConfig | None = None) -> LatencyTable:
    """Read and check the table at ``path``; with ``space`` (a space's name) and ``base`` (the search's plain
    architecture), also that it was measured for them. Raises :class:`TableError` (one line) otherwise."""
    path = Path(path)
    raw = _read(path)
    if not isinstance(raw["rows"], list) or not raw["rows"]:
        raise TableError(f"latency table {path}: rows must be a non-empty list")
    rows = [_row(r, index=i, path=str(path)) for i, r in enumerate(raw["rows"])]
    try:
        measured_on = ArchConfig.from_dict(raw["base"])
    except (TypeError, ValueError) as err:
        raise TableError(f"latency table {path}: base: {err}") from None
    if space is not None and raw["space"] != space:
        raise TableError(f"latency table {path} was measured for space {raw['space']!r}, not {space!r}; "
                         f"write and time a bundle of {space!r} (python -m devices bundle {space})")
    if base is not None and measured_on.to_dict() != base.to_dict():
        raise TableError(f"latency table {path} was measured on {_base_text(measured_on)}, not on "
                         f"{_base_text(base)}; write and time a bundle for this backbone")
    reference_ms = _number(raw, "reference_ms", where=f"latency table {path}")
    image = raw["image"]
    if not (isinstance(image, list) and len(image) == 3 and all(isinstance(v, int) and v > 0 for v in image)):
        raise TableError(f"latency table {path}: image={image!r} must be [C, H, W], positive integers")
    for key in ("batch", "threads"):
        if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 1:
            raise TableError(f"latency table {path}: {key}={raw[key]!r} must be an integer >= 1")
    if not any(r["name"] == raw["reference"] and r["kind"] == "backbone" for r in rows):
        raise TableError(f"latency table {path} has no row of its reference {raw['reference']!r}")
    costs = {r["name"]: r["rel"] * reference_ms for r in rows if r["kind"] != "arch"}
    archs = tuple(MeasuredArch(role=r["role"], arch=ArchConfig.from_dict(r["arch"]), ms=r["rel"] * reference_ms)
                  for r in rows if r["kind"] == "arch")
    return LatencyTable(path=str(path), space=raw["space"], base=measured_on, image=tuple(image),
                        batch=raw["batch"], threads=raw["threads"], reference_ms=reference_ms,
                        device=dict(raw["device"]), date=str(raw["date"]),
                        load_average=dict(raw.get("load_average") or {}), costs=costs, archs=archs)


def _base_text(base: ArchConfig) -> str:
    kwargs = f" {json.dumps(dict(base.backbone_kwargs), sort_keys=True)}" if base.backbone_kwargs else ""
    return (f"{base.backbone}{kwargs} (in_chans {base.in_chans}, {base.num_classes} classes, "
            f"small_input {str(base.small_input).lower()})")
