"""The structured configs of search.run / search.export: composable from code, choices from the registries."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hydra
import pytest

import search.run
from search.settings.config import (Device, ExportConfig, FaultKind, Precision, RunConfig, Sampler, export_settings,
                           run_settings)
from search.execution.faults import FAULTS
from search.samplers import SAMPLERS
from search.settings.errors import UserError
from trials import DATASETS, PRECISIONS

HAS_FASHION = Path(DATASETS["fashion_mnist"].default_root).is_dir()


def _compose(config_name: str, overrides: list[str]) -> object:
    with hydra.initialize(version_base=None, config_path=None):
        return hydra.compose(config_name=config_name, overrides=overrides)


def test_choices_come_from_the_registries() -> None:
    assert list(Sampler.__members__) == list(SAMPLERS)
    assert list(Precision.__members__) == list(PRECISIONS)
    assert list(FaultKind.__members__) == [*FAULTS, "mixed"]
    assert list(Device.__members__) == ["auto", "cpu", "cuda"]


def test_defaults_compose_to_the_dataclass_defaults() -> None:
    assert run_settings(_compose("run", [])) == RunConfig()
    assert export_settings(_compose("export", [])) == ExportConfig()


def test_overrides_are_typed() -> None:
    settings = run_settings(_compose("run", ["sampler=nsga2", "latency.precision=bf16", "asha.reduction_factor=3",
                                             "budget.backbone_kwargs={channels:[16,32,64,128]}", "name=7"]))
    assert settings.sampler is Sampler.nsga2 and settings.latency.precision is Precision.bf16
    assert settings.asha.reduction_factor == 3.0 and isinstance(settings.asha.reduction_factor, float)
    assert settings.budget.backbone_kwargs == {"channels": [16, 32, 64, 128]}
    assert settings.name == "7"


def test_ranges_are_checked_once_for_every_way_in() -> None:
    """A composed config, a plain mapping and a hand-built dataclass meet the same rule."""
    with pytest.raises(UserError, match=r"^faults.rate=2 must be a number from 0 to 1$"):
        run_settings(_compose("run", ["faults.rate=2"]))
    with pytest.raises(UserError, match=r"^asha.grace_period=0 must be an integer >= 1$"):
        run_settings({"asha": {"grace_period": 0}})
    with pytest.raises(UserError, match=r"^latency.runs=0 must be an integer >= 1$"):
        RunConfig(latency=RunConfig().latency.__class__(runs=0))


@pytest.mark.skipif(not HAS_FASHION, reason="Fashion-MNIST not installed (dataset-fashion-mnist)")
def test_compose_then_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As lightning-hydra-template's tests do: compose a config, call ``run(cfg)`` (here up to the checked plan)."""
    plans = []
    monkeypatch.setattr(search.run, "execute", plans.append)
    monkeypatch.chdir(tmp_path)
    cfg = _compose("run", ["name=composed", "device=cpu", "sampler=random", "budget.train_size=64",
                           "budget.val_size=64", "latency.precision=bf16", "faults.rate=0.5", "faults.kind='nan'",
                           "concurrency=1", f"storage={tmp_path / 'runs'}"])
    search.run.run(cfg)
    (plan,) = plans
    assert (plan.name, plan.study.sampler, plan.hardware) == ("composed", "random", "cpu")
    assert plan.execution.concurrency == 1
    assert plan.trial_settings.probe.precision == "bf16" and plan.trial_settings.probe.runs == 30
    assert (plan.faults.rate, plan.faults.kind) == (0.5, "nan")
    assert plan.execution.storage == str(tmp_path / "runs") and plan.budget.train_size == 64
    lock = plan.trial_settings.probe_lock  # node-local (the node's temp folder), made by the trials
    assert lock.parent == Path(tempfile.gettempdir()) / "attnas-probe" and lock.name.startswith("composed-")
    assert plan.execution.ray_address is None and plan.study.storage == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "prepare writes nothing"
