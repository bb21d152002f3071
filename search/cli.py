"""The command line of ``python -m search.run`` and ``python -m search.export``: check the overrides, then Hydra.

Hydra reports an unknown key (``budget.epoch=3``) or a malformed override over several lines with exit code 1,
and runs ``+key=value`` with a key the config lacks as if it meant something. :func:`main` checks every
``key=value`` against the primary config (``search/conf/NAME.yaml``) first, so such input ends like all bad input:
one ``error:`` line naming the key and the valid ones, exit code 2, nothing written. Hydra's flags (``--help``,
``--cfg job``, ``--multirun``, ...) and ``hydra.*`` / ``hydra/...`` overrides pass through to Hydra unchecked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from search.errors import UserError, exit_on_bad_input

CONF_DIR = Path(__file__).resolve().parent / "conf"


def main(hydra_entry: Callable[[], Any], *, config_name: str, argv: Sequence[str] | None = None) -> None:
    """Check the command line ``argv`` (default: ``sys.argv[1:]``) against ``conf/CONFIG_NAME.yaml``, then call
    ``hydra_entry`` (a ``@hydra.main`` function of that config, which reads ``sys.argv``) with it.

    Bad input exits with code 2 (:func:`search.errors.exit_on_bad_input`); ``hydra_entry`` does the same for what
    it finds. Tests call this with ``argv`` to go through exactly what ``python -m search.run ...`` does.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    with exit_on_bad_input():
        check_command_line(args, config=primary_config(config_name=config_name))
    with _argv(args):
        hydra_entry()


def primary_config(*, config_name: str) -> DictConfig:
    """``conf/CONFIG_NAME.yaml`` without its ``defaults`` list and ``hydra`` node: the settings a user may set."""
    config = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    return OmegaConf.masked_copy(config, [key for key in config if key not in ("defaults", "hydra")])


def check_command_line(args: Sequence[str], *, config: DictConfig) -> None:
    """Raise :class:`UserError` for an unknown option, an override Hydra cannot parse, an unknown key, a value
    given to a group of settings, ``+``/``~``/``@`` forms, or a sweep (``a,b``) without ``--multirun``."""
    parser = get_args_parser()
    parser.exit_on_error = False  # argparse errors become one line, not usage text
    try:
        options, unknown = parser.parse_known_args(list(args))
    except argparse.ArgumentError as exc:
        raise UserError(f"{exc}; see --help") from None
    if unknown and unknown[0].startswith("-"):
        raise UserError(f"unknown option {unknown[0]!r}; see --help for Hydra's options, or write key=value")
    if unknown:  # Hydra reads overrides only as one run of arguments
        raise UserError(f"override {unknown[0]!r} is split from the others by an option; put all key=value "
                        f"overrides together, before or after the options")
    overrides = OverridesParser.create()
    for text in options.overrides:
        override = _parse(overrides, text)
        key = override.key_or_group
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            continue  # Hydra's own settings: Hydra checks them
        _setting(config, key)
        if override.is_add() or override.is_delete() or override.package is not None:
            raise UserError(f"override {text!r}: only key=value is supported here (no +, ~ or @); e.g. {key}=VALUE")
        if override.is_sweep_override():
            if not options.multirun:
                raise UserError(f"{text!r} gives several values; quote one value ({key}='a,b'), use [a,b] for a "
                                f"list, or add --multirun to run once per value")
            continue
        _check_value(config, key, override.value())


def _parse(parser: OverridesParser, text: str) -> Override:
    try:
        return parser.parse_override(text)
    except HydraException as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise UserError(f"cannot parse override {text!r} ({detail}); write key=value, quoting values with "
                        f"special characters (key='a b')") from None


def _setting(config: DictConfig, key: str) -> Any:
    """The config node at dotted ``key``; an unknown key raises :class:`UserError` listing the valid ones there."""
    node: Any = config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        parent = ".".join(parts[:depth])
        if not isinstance(node, DictConfig):
            raise UserError(f"unknown setting {key!r}; {parent!r} is a single value, not a group (write {parent}=...)")
        if part not in node:
            under = f" under {parent}" if parent else ""
            raise UserError(f"unknown setting {key!r}; valid settings{under}: {_names(node)}")
        node = node[part]
    return node


def _check_value(config: DictConfig, key: str, value: Any) -> None:
    """A group of settings takes only a mapping of its own keys (``budget={epochs: 3}``), never a single value."""
    node = _setting(config, key)
    if not isinstance(node, DictConfig):
        return
    if not isinstance(value, dict):
        raise UserError(f"{key}={value!r}: {key!r} is a group of settings, not a value; set one of them as "
                        f"{key}.NAME=VALUE; valid settings under {key}: {_names(node)}")
    for name, inner in value.items():
        _check_value(config, f"{key}.{name}", inner)


def _names(node: DictConfig) -> str:
    return ", ".join(f"{name}.*" if isinstance(node[name], DictConfig) else str(name) for name in node)


@contextmanager
def _argv(args: list[str]) -> Iterator[None]:
    """Hydra reads ``sys.argv``; hand it exactly the checked arguments."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "search", *args]
    try:
        yield
    finally:
        sys.argv = saved
