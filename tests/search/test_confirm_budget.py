"""The confirmation's own budget (budget.confirm_epochs / budget.confirm_train_size) and the rank agreement of the
search with its confirmation (Kendall tau of the search's val_acc vs the confirmed test_acc)."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch

import search.run
from backbones import ArchConfig, StageConfig
from search.confirm.phase import confirm_budget_text, confirmed_controls, pick_candidates
from search.confirm.statistics import (confirmation_statistics, rank_agreement, read_confirmed_csv,
                                       write_confirmed_csv)
from search.tracking.plan_params import parent_params
from search.records import FinishedTrial
from spaces import SpaceError, load_space
from spaces.schema import ConfirmBudget
from trials import DATASETS

HAS_FASHION = Path(DATASETS["fashion_mnist"].default_root).is_dir()
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason="Fashion-MNIST not installed (dataset-fashion-mnist)")
WRITTEN = ("runs", "mlflow.db", "mlartifacts", "optuna.db")


# ---- the budget ---------------------------------------------------------------------------------------------

def test_the_shipped_budgets_confirm_at_the_search_budget_on_cpu_and_in_full_on_gpu() -> None:
    space = load_space("fashion_attention")
    cpu, gpu = space.budgets["cpu"], space.budgets["gpu"]
    assert cpu.confirm == ConfirmBudget(epochs=cpu.epochs, train_size=cpu.train_size)  # the same as the search
    assert gpu.confirm == ConfirmBudget(epochs=20, train_size=None) and gpu.epochs == 10  # a proxy search
    for name in ("cifar_attention", "mobile_attention", "your_data"):  # unset: the search's budget
        for budget in load_space(name).budgets.values():
            assert budget.confirm == ConfirmBudget(epochs=budget.epochs, train_size=budget.train_size), name


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"confirm_epochs": 5}, ConfirmBudget(epochs=5, train_size=6000)),
    ({"confirm_train_size": "all"}, ConfirmBudget(epochs=3, train_size=None)),
    ({"confirm_train_size": 8000, "confirm_epochs": 4}, ConfirmBudget(epochs=4, train_size=8000)),
    ({"train_size": 500}, ConfirmBudget(epochs=3, train_size=500)),  # unset follows the search's
    ({"epochs": 2, "confirm_epochs": None}, ConfirmBudget(epochs=2, train_size=6000)),  # null: keep the space's
])
def test_overrides_resolve_the_confirmation_budget(overrides: dict, expected: ConfirmBudget) -> None:
    assert load_space("fashion_attention").budgets["cpu"].with_overrides(overrides).confirm == expected


@pytest.mark.parametrize(("overrides", "expect", "space"), [  # space: its cpu budget
    ({"confirm_epochs": 0}, ("confirm_epochs=0", "positive integer"), "fashion_attention"),
    ({"confirm_epochs": 2.5}, ("confirm_epochs=2.5", "positive integer"), "fashion_attention"),
    ({"confirm_epochs": 2}, ("confirm_epochs=2 is below epochs=3", "budget.confirm_epochs"), "fashion_attention"),
    ({"confirm_train_size": "most"}, ("confirm_train_size='most'", "'all'", "null"), "fashion_attention"),
    ({"confirm_train_size": True}, ("confirm_train_size=True", "positive integer"), "fashion_attention"),
    ({"confirm_train_size": 1000}, ("confirm_train_size=1000 is below train_size=6000",), "fashion_attention"),
    ({"confirm_train_size": 9000}, ("confirm_train_size=9000 is below train_size=all",), "your_data"),
])
def test_bad_confirmation_budgets_are_one_line_errors(overrides: dict, expect: tuple[str, ...], space: str) -> None:
    with pytest.raises(SpaceError) as error:
        load_space(space).budgets["cpu"].with_overrides(overrides)
    message = str(error.value)
    assert "\n" not in message and message.startswith("budget override: ")
    for part in expect:
        assert part in message, (part, message)


def test_a_space_file_with_a_bad_confirmation_budget_names_it(tmp_path: Path) -> None:
    source = (Path(search.run.__file__).parents[1] / "spaces" / "fashion_attention.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.replace("    confirm_epochs: 20\n", "    confirm_epochs: 5\n"))
    with pytest.raises(SpaceError, match=r"budgets\.gpu: confirm_epochs=5 is below epochs=10"):
        load_space(str(bad))


@pytest.mark.parametrize(("args", "expect"), [
    (("budget.confirm_epochs=0",), ("confirm_epochs=0", "positive integer")),
    (("budget.confirm_epochs=1",), ("confirm_epochs=1 is below epochs=3",)),
    (("budget.confirm_train_size=most",), ("confirm_train_size='most'", "'all'")),
    (("budget.confirm_train_size=100",), ("confirm_train_size=100 is below train_size=6000",)),
    pytest.param(("budget.confirm_train_size=100000",), ("budget.confirm_train_size=100000", "1.."),
                 marks=needs_fashion),
])
def test_bad_confirmation_budget_on_the_command_line(args: tuple[str, ...], expect: tuple[str, ...], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """As tests/search/test_bad_input.py: one ``error:`` line naming the value, exit code 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(search.run, "execute", lambda plan: pytest.fail("the input passed validation"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        search.run.main(["device=cpu", *args])
    lines = capsys.readouterr().err.splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for part in expect:
        assert part in lines[0], (part, lines[0])
    assert not [name for name in WRITTEN if (tmp_path / name).exists()]


@needs_fashion
def test_the_plan_carries_the_confirmation_data_and_epochs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A larger confirmation loads the data again: more train images (the search's among them), the same val split,
    the test split; the search's data holds no test split."""
    plans = []
    monkeypatch.setattr(search.run, "execute", plans.append)
    monkeypatch.chdir(tmp_path)
    with hydra.initialize(version_base=None, config_path=None):
        cfg = hydra.compose(config_name="run", overrides=[
            "device=cpu", "budget.epochs=2", "budget.train_size=300", "budget.val_size=200",
            "budget.confirm_epochs=3", "budget.confirm_train_size=500", "data.test_size=100", "concurrency=1",
            f"storage={tmp_path / 'runs'}"])
    search.run.run(cfg)
    (plan,) = plans
    search_data, confirm_data = plan.data, plan.confirm.data
    assert search_data.test_x is None and search_data.test_y is None
    assert len(search_data.train_y) == 300 and len(confirm_data.train_y) == 500 and len(confirm_data.test_y) == 100
    assert torch.equal(search_data.val_x, confirm_data.val_x)  # val is drawn first: the same images either way
    confirm_images = {bytes(image.numpy()) for image in confirm_data.train_x}
    assert all(bytes(image.numpy()) in confirm_images for image in search_data.train_x)
    assert (plan.trial_settings.train.epochs, plan.confirm.epochs) == (2, 3)
    # the CPU defaults: the pick against the plain backbone only, 3 seeds, one look (search.plan_check)
    assert (plan.confirm.controls, plan.confirm.seeds, plan.confirm.max_seeds, plan.confirm.top_k) == ("plain", 3, 3, 1)
    params = parent_params(plan)
    assert (params["confirm.epochs"], params["confirm.train_size"], params["data.test_images"]) == (3, 500, 100)
    assert params["budget.confirm_train_size"] == 500 and params["budget.epochs"] == 2
    assert confirm_budget_text(plan) == "at 3 epochs on 500 images (the search: 2 epochs on 300)"


@needs_fashion
def test_at_the_search_budget_the_confirmation_shares_the_search_images(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plans = []
    monkeypatch.setattr(search.run, "execute", plans.append)
    monkeypatch.chdir(tmp_path)
    search.run.run({"device": "cpu", "budget": {"train_size": 300, "val_size": 200}, "data": {"test_size": 100},
                    "concurrency": 1, "storage": str(tmp_path / "runs")})
    (plan,) = plans
    assert plan.data.test_y is None and plan.confirm.data.train_x is plan.data.train_x  # loaded once
    assert confirm_budget_text(plan) == "at 3 epochs on 300 images (the search's budget)"
    plans.clear()
    search.run.run({"device": "cpu", "budget": {"train_size": 300, "val_size": 200}, "confirm": {"enabled": False},
                    "concurrency": 1, "storage": str(tmp_path / "runs")})
    (plan,) = plans
    assert plan.confirm.data is None and "confirm.epochs" not in parent_params(plan)


# ---- the rank agreement -------------------------------------------------------------------------------------

def _rows(test_acc: dict[str, float], val_acc: dict[str, float]) -> list:
    """Confirmed rows with two seeds each (the same test_acc on both) and the search's val_acc."""
    return confirmation_statistics({name: {1: acc, 2: acc} for name, acc in test_acc.items()}, reference="plain",
                                   search_val_acc=val_acc)


def test_rank_agreement_is_kendall_tau_over_the_rows_with_both() -> None:
    test = {"plain": 0.80, "a": 0.82, "b": 0.70, "c": 0.90}
    agreement = rank_agreement(_rows(test, {"plain": 0.50, "a": 0.60, "b": 0.55, "c": 0.70}))
    # pairs (val, test): 5 of the 6 pairs in the same order, 1 swapped (a vs b): tau = (5 - 1) / 6
    assert agreement.n == 4 and agreement.tau == pytest.approx(4 / 6)
    text = agreement.text()
    assert "Kendall tau +0.67" in text and "n=4" in text and "one swapped pair of the 6 moves it by 0.33" in text
    same = rank_agreement(_rows(test, {"plain": 0.5, "a": 0.6, "b": 0.4, "c": 0.7}))
    assert same.tau == pytest.approx(1.0)
    # a row the search did not train in full (no val_acc) is left out: n counts only the pairs
    partial = rank_agreement(_rows(test, {"plain": 0.5, "a": 0.6, "c": 0.7}))
    assert partial.n == 3 and partial.tau == pytest.approx(1.0)


@pytest.mark.parametrize(("test", "val", "n"), [
    ({"plain": 0.8, "a": 0.9}, {"plain": 0.5, "a": 0.6}, 2),  # fewer than 3 rows
    ({"plain": 0.8, "a": 0.9, "b": 0.7}, {"plain": 0.5, "a": 0.5, "b": 0.5}, 3),  # the search's side all ties
    ({"plain": 0.8, "a": 0.8, "b": 0.8}, {"plain": 0.5, "a": 0.6, "b": 0.7}, 3),  # the confirmed side all ties
    ({"plain": 0.8, "a": 0.9, "b": 0.7}, {}, 0),  # no search val_acc at all
])
def test_rank_agreement_is_na_without_a_ranking(test: dict, val: dict, n: int) -> None:
    agreement = rank_agreement(_rows(test, val))
    assert agreement.n == n and agreement.tau is None
    assert "n/a" in agreement.text() and f"n={n}" in agreement.text()


def test_search_val_acc_rides_along_in_the_confirmed_csv(tmp_path: Path) -> None:
    rows = _rows({"plain": 0.8, "a": 0.9}, {"plain": 0.51234567})
    back = read_confirmed_csv(write_confirmed_csv(rows, tmp_path / "confirmed.csv"))
    assert back[0].search_val_acc == pytest.approx(0.512346) and back[1].search_val_acc is None


def test_candidates_carry_the_search_val_acc_of_controls_and_front_trials() -> None:
    plain = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10, stages=(StageConfig(),) * 4)
    se = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                    stages=(StageConfig(attn="se", reduction=16),) + (StageConfig(),) * 3)
    eca = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                     stages=(StageConfig(attn="eca", kernel_size=3),) + (StageConfig(),) * 3)
    figures = dict(ranked_ms=1.0, latency_ms=1.0, params_m=1.0, flops_g=0.1, run_id="")
    searched = [FinishedTrial(trial_id="t0", control="plain", score=0.71, arch=plain, **figures),
                FinishedTrial(trial_id="t1", control="", score=0.75, arch=se, **figures),
                FinishedTrial(trial_id="t2", control="", score=0.73, arch=eca, **figures)]
    front = searched[1:]
    picked = pick_candidates(front=front, controls={"plain": plain}, top_k=1, searched=searched)
    assert [(c.name, c.search_val_acc) for c in picked] == [("plain", 0.71), ("t1", 0.75)]
    alone = pick_candidates(front=front, controls={"plain": plain}, top_k=1)  # no rows: controls unknown
    assert [c.search_val_acc for c in alone] == [None, 0.75]


def test_on_cpu_a_control_not_retrained_as_one_can_be_the_pick() -> None:
    """confirm.controls=plain: SE r16, a control of the search, is retrained as the front's pick when it leads it."""
    plain = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10, stages=(StageConfig(),) * 4)
    se = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10, stages=(StageConfig(attn="se", reduction=16),) * 4)
    eca = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                     stages=(StageConfig(attn="eca", kernel_size=3),) + (StageConfig(),) * 3)
    figures = dict(ranked_ms=1.0, latency_ms=1.0, params_m=1.0, flops_g=0.1, run_id="")
    front = [FinishedTrial(trial_id="t1", control="se_r16", score=0.76, arch=se, **figures),
             FinishedTrial(trial_id="t2", control="", score=0.73, arch=eca, **figures)]
    controls = {"plain": plain, "se_r16": se}
    assert list(confirmed_controls(controls, which="all")) == ["plain", "se_r16"]
    only_plain = confirmed_controls(controls, which="plain")
    assert list(only_plain) == ["plain"]
    picked = pick_candidates(front=front, controls=only_plain, top_k=1)
    assert [(c.name, c.control) for c in picked] == [("plain", True), ("se_r16", False)]
    assert [c.name for c in pick_candidates(front=front, controls=controls, top_k=1)] == ["plain", "se_r16", "t2"]


def test_when_plain_is_the_whole_front_the_most_accurate_other_trial_is_confirmed() -> None:
    plain = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10, stages=(StageConfig(),) * 4)
    eca = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                     stages=(StageConfig(attn="eca", kernel_size=3),) + (StageConfig(),) * 3)
    gc = ArchConfig(backbone="resnet10t", in_chans=1, num_classes=10,
                    stages=(StageConfig(attn="gc", reduction=8),) + (StageConfig(),) * 3)
    figures = dict(ranked_ms=1.0, latency_ms=1.0, params_m=1.0, flops_g=0.1, run_id="")
    searched = [FinishedTrial(trial_id="t0", control="plain", score=0.80, arch=plain, **figures),
                FinishedTrial(trial_id="t1", control="", score=0.70, arch=eca, **figures),
                FinishedTrial(trial_id="t2", control="", score=0.75, arch=gc, **figures)]
    picked = pick_candidates(front=searched[:1], controls={"plain": plain}, top_k=1, searched=searched)
    assert [c.name for c in picked] == ["plain", "t2"]
