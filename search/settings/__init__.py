"""What a command is told, at the bottom of the search: the Hydra structured configs (``config``), the command line
(``cli``, ``hydra_adapter``), bad input's one line (``errors``), the tracking URI's rules (``tracking_uri``), terminal
lines (``terminal``) and the checked plan's typed data (``plan``; :mod:`search.plan_check` makes it). Imports
nothing of the search's phases, and no Ray: bad input is refused before Ray starts (``tests/test_layers.py`` checks
it)."""
