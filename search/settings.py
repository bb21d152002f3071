"""What each setting of ``search/conf/*.yaml`` may hold: one check per key, a one-line :class:`UserError` otherwise.

Hydra takes ``seed=abc`` or ``data.download=maybe`` as strings (the configs are untyped YAML), so the entry points
check values here before using them. A table maps a dotted key to a :data:`Check`; adding a setting adds a row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from search.errors import UserError
from search.faults import FAULTS
from search.samplers import SAMPLERS
from trials import PRECISIONS

Check = Callable[[str, Any], None]  # check(key, value) raises UserError naming the key, the value and what is valid


def check_settings(cfg: DictConfig, *, rules: Mapping[str, Check]) -> None:
    """Run each rule on its key's value in ``cfg``; the first bad value raises :class:`UserError`."""
    for key, check in rules.items():
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
        except OmegaConfBaseException as exc:
            raise UserError(f"{key}: {str(exc).splitlines()[0]}") from None
        check(key, value)


def integer(*, minimum: int) -> Check:
    """An ``int`` (not a bool) ``>= minimum``."""

    def check(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserError(f"{key}={value!r} must be an integer >= {minimum}")

    return check


def number(*, above: float) -> Check:
    """An ``int`` or ``float`` (not a bool) ``> above``."""

    def check(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > above:
            raise UserError(f"{key}={value!r} must be a number > {above:g}")

    return check


def fraction() -> Check:
    """A number from 0 to 1."""

    def check(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise UserError(f"{key}={value!r} must be a number from 0 to 1")

    return check


def boolean() -> Check:
    """``true`` or ``false``."""

    def check(key: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise UserError(f"{key}={value!r} must be true or false")

    return check


def choice(values: Sequence[str], *, noun: str) -> Check:
    """One of ``values``; the message lists them (``unknown sampler 'grid'; valid samplers: tpe, ...``)."""

    def check(key: str, value: Any) -> None:
        if value not in values:
            raise UserError(f"unknown {noun} {value!r}; valid {noun}s: {', '.join(values)}")

    return check


def text(*, pattern: str = r".+", hint: str = "a non-empty string") -> Check:
    """A string (or a number, taken as its text) that fully matches ``pattern``; ``hint`` says what is valid."""

    def check(key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not re.fullmatch(pattern, str(value)):
            raise UserError(f"{key}={value!r}: use {hint}")

    return check


def optional(inner: Check) -> Check:
    """``null`` or whatever ``inner`` accepts."""

    def check(key: str, value: Any) -> None:
        if value is not None:
            inner(key, value)

    return check


DEVICES = ("auto", "cpu", "cuda")

_MLFLOW: dict[str, Check] = {  # reachability is checked by search.tracking.check_tracking_uri
    "mlflow.tracking_uri": text(hint="a tracking URI such as sqlite:///mlflow.db or http://127.0.0.1:5000"),
    "mlflow.experiment": text(),
}

# Checked in search.plan.prepare instead: space (spaces.load_space), name (it may come from the space) and
# budget.* (the space's Budget.with_overrides).
RUN_SETTINGS: dict[str, Check] = {  # conf/run.yaml
    "sampler": choice(tuple(SAMPLERS), noun="sampler"),
    "seed": integer(minimum=0),
    "device": choice(DEVICES, noun="device"),
    "concurrency": optional(integer(minimum=1)),
    "asha.grace_period": integer(minimum=1),
    "asha.reduction_factor": number(above=1),
    "data.root": optional(text(hint="a folder path")),
    "data.download": boolean(),
    "latency.runs": integer(minimum=1),
    "latency.warmup": integer(minimum=0),
    "latency.batch": integer(minimum=0),
    "latency.precision": choice(tuple(PRECISIONS), noun="latency precision"),
    "latency.channels_last": boolean(),
    "latency.reference": boolean(),
    "compile": boolean(),
    "constraints.max_latency_ms": optional(number(above=0)),
    "constraints.max_params_m": optional(number(above=0)),
    "faults.rate": fraction(),
    "faults.kind": choice((*FAULTS, "mixed"), noun="failure kind"),
    **_MLFLOW,
    "storage": text(hint="a folder path"),
}

EXPORT_SETTINGS: dict[str, Check] = {  # conf/export.yaml
    "search": text(),
    "max_latency_ms": optional(number(above=0)),
    "out": text(hint="a folder path"),
    "module_name": optional(text(pattern=r"[A-Za-z_]\w*", hint="a valid Python identifier")),
    **_MLFLOW,
}
