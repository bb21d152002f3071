"""What a person looks at: Pareto reports (CSV, PNG, interactive HTML) and the MLflow UI launcher."""

from dashboards.pareto_report import write_pareto_report
from dashboards.ui import ui_command, ui_hint

__all__ = ["ui_command", "ui_hint", "write_pareto_report"]
