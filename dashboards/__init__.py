"""What a person looks at: Pareto reports (CSV, PNG, interactive HTML) and the MLflow UI launcher.

``python -m dashboards.ui`` opens the MLflow UI (``dashboards.ui`` is not imported here, so ``-m`` runs it cleanly).
"""

from dashboards.pareto_report import write_pareto_report

__all__ = ["write_pareto_report"]
