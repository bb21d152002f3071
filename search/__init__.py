"""The search: Hydra entry points (``python -m search.run``, ``python -m search.export``) over six subpackages, in
the order they depend on each other: ``settings`` (configs, command line, the checked plan; no Ray), ``study``
(Optuna), ``execution`` (Ray Tune), ``tracking`` (MLflow), ``confirm`` (the confirmation phase), ``summary`` (the
front, the report's data, the printed summary). ``outcomes`` holds the names they all agree on.

Entry points live in their own modules (``search.run.run(cfg)``, ``search.export.export(cfg)``) so that importing
this package stays cheap.
"""

from search.settings.errors import UserError
from search.outcomes import OBJECTIVES, Outcome

__all__ = ["OBJECTIVES", "Outcome", "UserError"]
