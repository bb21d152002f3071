"""MLflow: the search's parent run (``parent``), the nested run per trial written by a Ray callback in the driver
(``trial_runs``), and the UI addresses of both (``links``). Tag names live in :mod:`search.outcomes`."""
