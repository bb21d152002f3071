"""Smoke runs: every benchmark's main() with --quick (tiny sizes, seconds), so the scripts do not rot."""

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.latency_repeatability import spearman

BENCHMARKS = ["trial_vs_bare", "data_pipeline", "latency_repeatability", "gpu_throughput", "train_speed",
              "runtime_latency", "oneshot"]
PURE = ["sequential_rule", "table_signal"]  # no device: figures without the environment header


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_run_prints_figures_with_their_environment(name, capsys):
    figures = importlib.import_module(f"benchmarks.{name}").main(["--quick"])
    out = capsys.readouterr().out
    assert "----- markdown for BENCHMARKS.md -----" in out and "\n|---|" in out
    for field in (f"Command: `python -m benchmarks.{name} --quick`", "Device: ", "torch ", "threads 1", "Date: "):
        assert field in out
    assert figures and all(isinstance(value, float) for value in figures.values())


def test_spearman_matches_hand_computed_values():
    assert spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    assert spearman([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(math.sqrt(3) / 2)  # a tie: average ranks
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_gpu_throughput_imports_no_ray_mlflow_or_search():
    """It must run on a GPU host that has only torch, torchvision and timm."""
    code = ("import sys, benchmarks.gpu_throughput; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'search', 'optuna', 'hydra'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_orchestration_quick_run_goes_through_the_real_search(tmp_path):
    """Ray, Optuna, ASHA and MLflow for real (1 and 2 trivial trials); its own process, as Ray wants."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.orchestration", "--quick"], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Marginal overhead per trial: **" in out.stdout and "| 2 |" in out.stdout


def test_latency_in_search_quick_run_goes_through_a_real_concurrent_search():
    """Ray Tune with the real trainable, 2 trials at once, with and without the probe slot; its own process."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.latency_in_search", "--quick"],
                         cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| with slot | plain |" in out.stdout and "| without slot | cbam_r16_k7 |" in out.stdout
    assert "median over all 3 pairs (latency_ms)" in out.stdout and "Date: " in out.stdout


def test_pairwise_differences_are_relative_to_the_smaller():
    from benchmarks.latency_in_search import pairwise

    assert pairwise([2.0, 2.1, 4.0]) == pytest.approx([0.05, 1.0, 4.0 / 2.1 - 1])


def test_trial_vs_bare_with_the_probe_slot_says_so(capsys):
    from benchmarks.trial_vs_bare import main

    main(["--quick", "--probe-slot"])
    assert "holds an (uncontended) probe slot" in capsys.readouterr().out


# ---- issue 11: the attention-placement ground-truth table and the replay on it ------------------------------------
def test_search_quality_quick_replay_on_the_committed_table(capsys):
    """The replay through StudySearcher on the committed table: 3 seeds, budgets of 10% and 25% (seconds)."""
    from benchmarks.search_quality import main

    figures = main(["--quick"])
    out = capsys.readouterr().out
    assert "----- markdown for BENCHMARKS.md -----" in out and "Command: `python -m benchmarks.search_quality --quick`" in out
    for sampler in ("tpe", "nsga2", "random"):
        assert f"| {sampler} | " in out
        ratios = [v for k, v in figures.items() if k.startswith(f"hv_{sampler}_")]
        assert ratios and all(0.0 < r <= 1.0 + 1e-9 for r in ratios)
    assert "val_acc, grace 2, rf 2 (shipped)" in out and "pareto, grace 1, rf 2" in out and "pareto, grace 2, rf 2" in out
    assert -1.0 <= figures["spearman_val_e1"] <= 1.0
    assert 0.0 <= figures["asha_front_stopped_g1_rf2_pareto"] and 0.0 < figures["asha_hv_g1_rf2_pareto"] <= 1.0


def test_hypervolume_and_front_by_hand():
    from benchmarks.search_quality import hypervolume, pareto

    points = [(0.9, 2.0), (0.8, 1.0), (0.7, 1.5), (0.85, 3.0)]  # (acc ↑, latency ↓): the last two are dominated
    assert pareto(points) == [(0.8, 1.0), (0.9, 2.0)]
    # ref (0.5, 4.0): (0.8 - 0.5) * (4 - 1) + (0.9 - 0.8) * (4 - 2)
    assert hypervolume(points, (0.5, 4.0)) == pytest.approx(0.9 + 0.2)
    assert hypervolume([(0.4, 1.0)], (0.5, 4.0)) == 0.0  # outside the reference box


def test_asha_simulation_follows_rays_rungs():
    from benchmarks.search_quality import simulate_asha
    from search.execution.scheduler import rung_milestones  # the search's rungs, which the simulation uses

    assert rung_milestones(grace_period=1, reduction_factor=2.0, full_epochs=2) == [1]
    assert rung_milestones(grace_period=1, reduction_factor=2.0, full_epochs=8) == [1, 2, 4]
    curves = {"c": [0.5, 0.6], "a": [0.4, 0.5], "b": [0.7, 0.8], "d": [0.55, 0.6]}
    # rung at epoch 1, rf 2: stop when below the median of the values recorded before; the control c never stops
    stopped, spent = simulate_asha(["c", "a", "b", "d"], curves=curves, controls={"c"}, grace=1, rf=2.0, max_t=2)
    assert stopped == {"a"} and spent == 2 + 1 + 2 + 2  # d: 0.55 >= median(0.5, 0.4, 0.7) = 0.5


def test_attention_table_builder_trains_one_arch_and_resumes(tmp_path):
    """One architecture, one seed, a tiny budget, in this process; a second call trains nothing (resume)."""
    import csv

    from benchmarks.attention_table import main

    out = tmp_path / "t.csv"
    args = ["--out", str(out), "--archs", "1", "--seeds", "0", "--workers", "0", "--epochs", "1",
            "--train-size", "64", "--val-size", "64", "--batch-size", "32"]
    assert main(args) == 1
    row = next(csv.DictReader(out.open()))
    assert row["arch"] == "none-none-none-none" and row["seed"] == "0"
    assert 0.0 <= float(row["test_acc"]) <= 1.0 and float(row["val_acc_e1"]) == float(row["val_acc"])
    assert float(row["latency_ms"]) > 0 and float(row["latency_rel"]) > 0 and float(row["params_m"]) > 0
    assert (tmp_path / "t.json").exists()
    assert main(args) == 1  # resumed: nothing to train, nothing to measure


def test_planted_sets_hold_the_relation_and_the_twin_does_not(tmp_path):
    """benchmarks.planted: a "same" image has two identical corner patterns, a "different" one two patterns that
    differ; the twin keeps the images and the class balance but not the relation."""
    from PIL import Image

    from benchmarks.planted import CORNER, PATCH, SIDE, planted_images, write_folder

    images, labels = planted_images(images=200, seed=3)
    assert images.shape == (200, SIDE, SIDE) and labels.sum() == 100

    def bits(corner):  # the pattern: the only pure-white pixels (noise stays below 60) in the corner region
        white = corner == 255
        ys, xs = np.nonzero(white)
        if len(ys) == 0:
            return np.zeros((PATCH, PATCH), bool)
        # the pattern's box: its white pixels lie inside one PATCH x PATCH window; align on the window that holds them
        for y in range(CORNER - PATCH + 1):
            for x in range(CORNER - PATCH + 1):
                if white[y:y + PATCH, x:x + PATCH].sum() == white.sum():
                    window = corner[y:y + PATCH, x:x + PATCH]
                    if ((window == 255) | (window == 0)).all():
                        return window == 255
        raise AssertionError("no pattern window found")

    agree = 0
    for image, label in zip(images, labels):
        first, second = bits(image[:CORNER, :CORNER]), bits(image[-CORNER:, -CORNER:])
        if label:
            agree += bool((first == second).all())
        else:
            agree += bool((first != second).any())
    assert agree >= 190  # a window can be ambiguous when a pattern has an all-black border row; nearly all align

    relation = write_folder(tmp_path / "relation", kind="relation", images=40, seed=3)
    twin = write_folder(tmp_path / "twin", kind="twin", images=40, seed=3)
    files = {kind: {p.name: p.parent.name for p in (root).glob("*/*.png")} for kind, root in
             (("relation", relation), ("twin", twin))}
    assert files["relation"].keys() == files["twin"].keys() and len(files["relation"]) == 40
    assert sorted(files["relation"].values()) == sorted(files["twin"].values())  # same class balance
    assert files["relation"] != files["twin"]  # labels reshuffled
    name = next(iter(files["relation"]))
    same_pixels = np.asarray(Image.open(relation / files["relation"][name] / name))
    assert (same_pixels == np.asarray(Image.open(twin / files["twin"][name] / name))).all()


@pytest.mark.parametrize("name", PURE)
def test_quick_pure_benchmarks_print_their_table(name, capsys):
    figures = importlib.import_module(f"benchmarks.{name}").main(["--quick"])
    out = capsys.readouterr().out
    assert f"Command: `python -m benchmarks.{name} --quick`" in out and "\n|---|" in out and "Date: " in out
    assert figures and all(isinstance(value, float) for value in figures.values())


def test_planted_kinds_are_read_from_the_arch_text_and_learners_from_the_why_rows():
    """benchmarks.planted: the kinds an architecture holds come from its short text (stages and head); a kind
    learns the relation when its mean test_acc beats plain's by LEARNS_MARGIN."""
    from benchmarks.planted import LEARNS_MARGIN, kinds_in, learners, summary

    assert kinds_in("cbam/r4/k3@stage_end | coord/r8@stage_end | - | -") == {"cbam", "coord"}
    assert kinds_in("nl/r8@in_block@last | - | eca/k5 | - +attn_pool") == {"nl", "eca", "attn_pool"}
    assert kinds_in("- | - | - | -") == frozenset() and kinds_in("plain") == frozenset()
    rows = ([{"arch": "plain", "test_acc": a} for a in (0.49, 0.51)]
            + [{"arch": "se_r8", "test_acc": a} for a in (0.50, 0.50 + LEARNS_MARGIN)]  # mean gain below the margin
            + [{"arch": "cbam_r8", "test_acc": a} for a in (0.75, 0.80)]
            + [{"arch": "eca", "test_acc": 0.70}] + [{"arch": "attn_pool_head", "test_acc": 0.72}])
    assert learners(rows) == {"cbam", "eca", "attn_pool"}
    outcomes = [{"dataset": "relation", "pick": "cbam/r16/k7 | - | - | -", "pick_better": True,
                 "rows": [{"name": "cbam_r16_k7", "arch": "cbam/r16/k7 | - | - | -", "diff_vs_plain_mean": "0.3",
                           "verdict": "better"}]},
                {"dataset": "relation", "pick": "se/r8 | - | - | -", "pick_better": True,
                 "rows": [{"name": "se_r16", "arch": "se/r8 | - | - | -", "diff_vs_plain_mean": "0.1",
                           "verdict": "better"}]},
                {"dataset": "twin", "pick": "plain", "pick_better": False, "rows": []}]
    text = summary(outcomes, solvers=learners(rows))
    assert "recall: 2 of 2 relation searches confirm a placement better (the pick by +0.100 to +0.300); 0 of them " \
           "pick nl or gc, 1 a kind that learns it alone" in text
    assert "false positives on twin: 0 of 1" in text
    assert "controls left out): 0 of 2 relation searches confirm one better" in text  # both picks' rows are named
    outcomes[0]["rows"] = [{"name": "cbam_r16_k7", "arch": "cbam/r16/k7 | - | - | -", "verdict": "better",
                            "diff_vs_plain_mean": "0.3"},
                           {"name": "ff2ce9c6", "arch": "nl/r8 | - | - | -", "verdict": "better"},
                           {"name": "07e70f7b", "arch": "se/r8 | - | - | -", "verdict": "within noise"}]
    assert "controls left out): 1 of 2 relation searches confirm one better, 1 of them holding nl or gc, 0 of them holding a " \
           "kind that learns it alone" in summary(outcomes, solvers=learners(rows))


def test_planted_why_trains_every_kind_of_the_space_once_and_resumes(tmp_path):
    """benchmarks.planted --why (quick sizes, real training): one row per architecture of why_archs (plain, each
    attention type of your_data alone, the attn_pool head), written as measured; a rerun trains nothing."""
    from benchmarks.planted import why, write_folder
    from spaces import load_space

    root = write_folder(tmp_path / "relation", kind="relation", images=160, seed=0)
    record = tmp_path / "why.json"
    rows = why(root, seeds=1, quick=True, record=record)
    types = {kind for stage in load_space("your_data").stages for kind in stage.types} - {"none"}
    names = {row["arch"] for row in rows}
    assert names == {"plain", "attn_pool_head"} | {n for n in names if n.split("_r8")[0] in types}
    assert len(names) == 2 + len(types) and all(0.0 <= row["test_acc"] <= 1.0 for row in rows)
    assert json.loads(record.read_text()) == rows
    assert why(root, seeds=1, quick=True, record=record) == rows  # resumed: nothing trained again


def test_planted_report_reads_the_finished_searches_and_runs_nothing(tmp_path, capsys):
    """benchmarks.planted --report: the summary and one markdown row per outcome.json under --out, in dataset then
    seed order; nothing is written or trained."""
    from benchmarks.planted import main

    rows = [{"name": "plain", "arch": "- | - | - | -", "diff_vs_plain_mean": "0", "diff_vs_plain_ci95_low": "0",
             "diff_vs_plain_ci95_high": "0", "verdict": "reference"},
            {"name": "cbam_r16_k7", "arch": "cbam/r16/k7 | - | - | -", "diff_vs_plain_mean": "0.316",
             "diff_vs_plain_ci95_low": "0.159", "diff_vs_plain_ci95_high": "0.472", "verdict": "better"}]
    for dataset, seed, better in (("twin", 0, False), ("relation", 1, True), ("relation", 0, True)):
        folder = tmp_path / "searches" / f"{dataset}-seed{seed}"
        folder.mkdir(parents=True)
        (folder / "outcome.json").write_text(json.dumps({
            "dataset": dataset, "seed": seed, "wall_s": 800.0, "verdict": "…", "pick_better": better,
            "pick": "cbam/r16/k7 | - | - | -" if better else "plain", "rows": rows}))
    before = sorted(tmp_path.rglob("*"))
    main(["--report", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "false positives on twin: 0 of 1" in out and "recall: 2 of 2 relation searches" in out
    table = [line for line in out.splitlines() if line.startswith("| relation") or line.startswith("| twin")]
    assert [line.split(" | ")[0] for line in table] == ["| relation seed 0", "| relation seed 1", "| twin seed 0"]
    assert "`cbam/r16/k7 \\| - \\| - \\| -` | better | +31.6 [+15.9, +47.2] |" in table[0]
    assert sorted(tmp_path.rglob("*")) == before
