"""The search: Hydra entry points (``python -m search.run``, ``python -m search.export``, ``python -m search.proxy``).

Its parts in layers, lowest first; each imports only those below it (``tests/test_layers.py``, ``SEARCH_LAYERS``):

1. ``outcomes`` (the names they all agree on), ``pareto`` (Pareto order, pure), ``samplers`` (the Optuna sampler
   registry): no other search module imported.
2. ``settings``: the Hydra configs, the command line, bad input's one line, and the checked plan as plain typed data
   (``settings.plan.SearchPlan``: ``plan.budget``, ``plan.asha``, ``plan.confirm``, ...). No Ray.
3. ``execution``: where trials run (Ray Tune: trainable, ASHA, Tuner, cluster, storage, checkpoints, calibration).
4. ``plan_check``: ``prepare(cfg)``, the config checked into a plan before anything is written or Ray starts (asks
   execution's cluster and storage rules; no Ray import).
5. ``study`` (Optuna: the study searcher, the one-shot pre-screen), ``tracking`` (MLflow: the parent run, trial runs,
   the plan's params), ``confirm`` (the confirmation phase), ``summary`` (the front, reports, the printed summary),
   ``export`` (the confirmed pick as a module), in that order.
6. ``proxy`` and ``run``: entry points; ``run.py`` is the sequence of phases.

Entry points live in their own modules (``search.run.run(cfg)``, ``search.export.export(cfg)``) so that importing
this package stays cheap.
"""

from search.settings.errors import UserError
from search.outcomes import OBJECTIVES, Outcome

__all__ = ["OBJECTIVES", "Outcome", "UserError"]
