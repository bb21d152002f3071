"""What a command is told and checks before anything runs: the Hydra structured configs (``config``), the command
line (``cli``, ``hydra_adapter``), bad input's one line (``errors``), the tracking URI's rules (``tracking_uri``),
terminal lines (``terminal``) and the checked :class:`~search.settings.plan.SearchPlan` (``plan``). No Ray import
here: bad input is refused before Ray starts (``tests/test_layers.py`` checks it)."""
