"""The private Ray attribute behind search.execution.ray_adapter still exists and does what the adapter needs."""

from __future__ import annotations

from ray import tune

from search.execution.ray_adapter import set_callbacks_of_restored_tuner


def test_restored_tuner_callbacks_can_be_replaced(tmp_path) -> None:
    def trainable(config):  # never run: the Tuner is only built
        tune.report({"x": 1.0})

    tuner = tune.Tuner(trainable, run_config=tune.RunConfig(name="t", storage_path=str(tmp_path)))
    callbacks = [tune.Callback()]
    set_callbacks_of_restored_tuner(tuner, callbacks)
    assert tuner._local_tuner.get_run_config().callbacks is callbacks
