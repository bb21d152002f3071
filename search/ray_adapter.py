"""The one place that reaches into a private Ray attribute, because no public API serves.

``tune.Tuner.restore`` takes no ``run_config``/``callbacks``: a restored Tuner runs the callbacks pickled with the
experiment, i.e. the previous driver's objects (its MLflow client, its progress printer). The search needs this
process's callbacks. Upstream: https://github.com/ray-project/ray/issues/41364 ("Allow passing callbacks to
Tuner.restore"). ``tests/search/test_ray_adapter.py`` fails if Ray changes the attributes used here.
"""

from __future__ import annotations

from typing import Any

from ray import tune


def set_callbacks_of_restored_tuner(tuner: tune.Tuner, callbacks: list[Any]) -> None:
    """Make a Tuner from ``Tuner.restore`` run ``callbacks`` instead of the pickled ones."""
    tuner._local_tuner.get_run_config().callbacks = callbacks
