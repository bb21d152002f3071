"""What a person looks at: the interactive search report, the Pareto files, the MLflow UI and the live study view.

``python -m dashboards.ui`` opens the MLflow UI and ``python -m dashboards.study`` optuna-dashboard on the search's
study (neither module is imported here, so ``-m`` runs them cleanly).
"""

from dashboards.pareto_report import write_pareto_report
from dashboards.report import write_report

__all__ = ["write_pareto_report", "write_report"]
