"""The search's lines go to the terminal as the command line sends them (:func:`search.log.configure`), so tests
that call its parts directly read them with ``capsys``."""

from __future__ import annotations

import pytest

from search.log import configure


@pytest.fixture(autouse=True)
def terminal() -> None:
    configure()
