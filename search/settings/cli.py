"""The command line of ``python -m search.run`` and ``python -m search.export``: compose, then run the task.

:func:`main` composes the command's structured config (:mod:`search.settings.config`) with Hydra's Compose API from the
``key=value`` overrides and calls the plain task with it, so bad input ends like all bad input: one ``error:`` line
naming the setting, the value and what is valid, exit code 2, nothing written. A command line with one of Hydra's
own flags (``--help``, ``--cfg job``, ``--multirun``, ...) or a ``hydra.*`` override goes to the command's
``@hydra.main`` function instead, which reads ``sys.argv`` itself; there Hydra reports bad overrides in its words.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import hydra
from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from search.log import configure
from search.settings.config import SCHEMAS, explain, unknown_setting
from search.settings.errors import UserError, exit_on_bad_input
from search.settings.hydra_adapter import hydra_flags

HYDRA_FLAGS = hydra_flags()  # Hydra's own command-line flags (https://hydra.cc/docs/advanced/hydra-command-line-flags/)


def main(task: Callable[[DictConfig], Any], hydra_entry: Callable[[], Any], *, config_name: str,
         argv: Sequence[str] | None = None) -> None:
    """Compose config ``config_name`` with the overrides ``argv`` (default: ``sys.argv[1:]``) and call ``task`` with
    it; bad input, found while composing or by ``task``, exits with code 2 (:func:`search.settings.errors.exit_on_bad_input`).

    With Hydra's flags or ``hydra.*`` overrides, calls ``hydra_entry`` (the ``@hydra.main`` function over ``task``)
    instead; it reads ``sys.argv``, so such a command line cannot come as ``argv``. Tests call this with ``argv`` to
    go through exactly what ``python -m search.run ...`` does.
    """
    configure()  # the command's lines to the terminal (search.log)
    args = list(sys.argv[1:] if argv is None else argv)
    with exit_on_bad_input():
        if _for_hydra(args):
            if args != sys.argv[1:]:
                raise ValueError("Hydra's flags and hydra.* overrides are read from sys.argv by @hydra.main: call "
                                 "main() without argv for them")
            hydra_entry()
            return
        task(compose(config_name, args))


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Config ``config_name`` with ``overrides`` (``key=value`` each); a bad override raises :class:`UserError`."""
    schema = SCHEMAS[config_name]
    for text in overrides:
        if text.startswith(("+", "~")):  # Hydra would add a key the code never reads, or drop one it needs
            key = text.lstrip("+~").split("=", 1)[0]
            raise UserError(unknown_setting(schema, key) or
                            f"override {text!r}: only key=value is supported here (no + or ~); e.g. {key}=VALUE")
    try:
        with hydra.initialize(version_base=None, config_path=None):
            return hydra.compose(config_name=config_name, overrides=list(overrides))
    except OverrideParseException as exc:
        detail = next((line.strip() for line in exc.message.splitlines() if line.strip()), type(exc).__name__)
        raise UserError(f"cannot parse override {exc.override!r} ({detail}); write key=value, quoting values with "
                        f"special characters (key='a b')") from None
    except ConfigCompositionException as exc:
        if isinstance(exc.__cause__, OmegaConfBaseException):  # unknown key, wrong type, not a choice
            raise explain(exc.__cause__, schema) from None
        raise UserError(str(exc)) from None  # e.g. "Ambiguous value for argument 'seed=1,2' ... add --multirun"
    except HydraException as exc:
        raise UserError(str(exc)) from None


def _for_hydra(args: Sequence[str]) -> bool:
    """Whether ``args`` hold Hydra's flags or settings (for ``@hydra.main``); an unknown flag raises UserError."""
    for arg in args:
        if arg.startswith("-") and arg.split("=", 1)[0] not in HYDRA_FLAGS:
            raise UserError(f"unknown option {arg!r}; write key=value, or one of Hydra's options (see --help): "
                            f"{', '.join(f for f in HYDRA_FLAGS if f.startswith('--'))}")
    return any(arg.startswith("-") or arg.lstrip("+~").startswith(("hydra.", "hydra/", "hydra=")) for arg in args)
