"""What a person looks at, drawn from what the search produced: the interactive search report, the MLflow UI and
the live study view.

``dashboards`` sits above ``search``: the report reads the search's results through one data module
(``search.summary.report_data``), and the search finds ``write_report`` through the ``attnas.reports`` entry point
(``search.summary.reports``) instead of importing it. ``python -m dashboards.ui`` opens the MLflow UI and
``python -m dashboards.study`` optuna-dashboard on the search's study (neither module is imported here, so ``-m``
runs them cleanly).
"""

from dashboards.report import write_report

__all__ = ["write_report"]
