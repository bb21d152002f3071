"""The one place that reaches into Ray's private attributes and functions, because no public API serves.

``tune.Tuner.restore`` takes no ``run_config``/``callbacks``: a restored Tuner runs the callbacks pickled with the
experiment, i.e. the previous driver's objects (its MLflow client, its progress printer). The search needs this
process's callbacks. Upstream: https://github.com/ray-project/ray/issues/41364 ("Allow passing callbacks to
Tuner.restore"). ``tests/search/test_ray_adapter.py`` fails if Ray changes the attributes used here.

``ray.address=auto`` is resolved the way ``ray.init`` resolves it, by Ray's own (private) function, so the search
can check that the cluster is reachable before it writes anything (:func:`find_cluster_address`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # no Ray import at module level: search.plan_check uses find_cluster_address
    from ray import tune


def set_callbacks_of_restored_tuner(tuner: tune.Tuner, callbacks: list[Any]) -> None:
    """Make a Tuner from ``Tuner.restore`` run ``callbacks`` instead of the pickled ones."""
    tuner._local_tuner.get_run_config().callbacks = callbacks


def find_cluster_address() -> str | None:
    """The HOST:PORT that ``ray.init(address="auto")`` would join: ``RAY_ADDRESS``, else the cluster ``ray start``
    last started on this machine (Ray's ``ray_current_cluster`` file), else a running GCS found on this machine;
    None when there is none. Ray resolves ``auto`` in a private function (``ray._private.services``) and raises
    ConnectionError when nothing runs; the search needs the answer before it writes anything, to say so in one line.
    """
    from ray._private import services

    try:
        return services.canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError):
        return None
