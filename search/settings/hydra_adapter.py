"""The one place that reads Hydra's internals, because no public API serves: the command-line flags ``@hydra.main``
accepts (``search.settings.cli`` must tell them from ``key=value`` overrides before composing a config itself).

Hydra builds its parser in ``hydra._internal.utils.get_args_parser`` (what ``@hydra.main`` parses ``sys.argv``
with); its flags are the parser's option strings. ``tests/search/test_cli_errors.py`` checks them against what
``--hydra-help`` prints, so a Hydra that changes this fails a test instead of misreading a command line.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def hydra_flags() -> tuple[str, ...]:
    """Every flag of Hydra's command line (``--help``, ``-h``, ``--cfg``, ``--multirun``, ...), in Hydra's order."""
    from hydra._internal.utils import get_args_parser

    return tuple(get_args_parser()._option_string_actions)
