"""The search: Hydra entry points (``python -m search.run``, ``python -m search.export``), Ray Tune + Optuna +
ASHA wiring, MLflow logging and the Pareto maths.

Entry points live in their own modules (``search.run.run(cfg)``, ``search.export.export(cfg)``) so that importing
this package stays cheap.
"""

from search.settings.errors import UserError
from search.outcomes import OBJECTIVES, Outcome

__all__ = ["OBJECTIVES", "Outcome", "UserError"]
