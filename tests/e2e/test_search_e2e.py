"""The real thing, end to end: the CLI on Fashion-MNIST through Ray + Optuna + ASHA + MLflow, then export.

Nothing is mocked. The search is shrunk (small train subset, few epochs, narrow backbone) to fit CI's 2 cores. It
runs the controls, de-duplicates, confirms the front's pick against the plain backbone on the official test split
(2 seeds here) and exports the confirmed pick.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from safetensors.torch import load_file

from trials.speed import CANDIDATES

REPO = Path(__file__).resolve().parents[2]
TRIALS = 5
EPOCHS = 2
CONTROLS = ("plain", "se_r16", "cbam_r16_k7")  # the default controls (spaces.DEFAULT_CONTROLS + the plain backbone)
SEEDS = (1, 2)  # confirmation seeds: the search's seed is 0
TRAIN_SIZE = 640  # the search's train images
CONFIRM = (3, 768)  # the confirmation's (budget.confirm_epochs, budget.confirm_train_size): more than the search's

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def search(e2e_search) -> tuple[Path, str]:
    """The session's real search (tests/conftest.py, shared with the browser test), with the sizes assumed here."""
    assert (e2e_search.trials, e2e_search.epochs, e2e_search.seeds, e2e_search.train_size, e2e_search.confirm) == (
        TRIALS, EPOCHS, SEEDS, TRAIN_SIZE, CONFIRM)
    return e2e_search.folder, e2e_search.stdout


def test_search_prints_progress_and_the_front(search: tuple[Path, str]) -> None:
    folder, stdout = search
    assert "No CUDA device: using the CPU budget" in stdout
    total = TRIALS + len(CONTROLS)
    assert f"trial {total}/{total}" in stdout and f"epoch 1/{EPOCHS}" in stdout
    assert "Pareto front (" in stdout and "mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1" in stdout
    assert f"optuna-dashboard sqlite:///{folder / 'optuna.db'}" in stdout  # at start and at the end
    assert "Placement insight" in stdout and "most important knobs for val_acc" in stdout
    for control in CONTROLS:  # controls run first, through the same trial path
        assert re.search(rf"trial [123]/{total} \w+ start \(control {control}\)", stdout), control
    assert f"{total} distinct architectures trained" in stdout
    assert "Confirmed on the official test split" in stdout and "reference" in stdout
    verdict = stdout.split("Confirmed on the official test split")[1]
    assert "Look at 1 seeds: widest interval ±n/a points (asked ±1.0), adding seeds" in stdout
    assert "Look at 2 seeds: widest interval ±" in stdout and "seed cap reached" in stdout
    budget = f"at {CONFIRM[0]} epochs on {CONFIRM[1]:,} images (the search: {EPOCHS} epochs on {TRAIN_SIZE})"
    assert f"The confirmation's budget is larger than the search's: {budget}" in stdout
    assert re.search(rf"Confirmation: \d architectures .*, trained from scratch {re.escape(budget)} on 1 to 2 seeds",
                     stdout)
    assert f"epoch 1/{CONFIRM[0]}" in stdout.split("Confirmation seeds")[1]  # the confirmation's own progress
    # the search's ranking against the confirmed one: tau over the confirmed rows with its n, or n/a and why
    assert re.search(r"Rank agreement of the search with its confirmation: (Kendall tau [+-]\d\.\d\d .* over "
                     r"n=\d architectures|n/a \(.*n=\d\))", verdict), verdict
    assert re.search(r"(No placement beats the plain backbone (by more than [\d.]+ points|: every one is worse)|"
                     r"Nothing was resolved: the intervals) "
                     r"\(95%, 2 seeds; intervals up to ±[\d.]+ points, ±1.0 asked\)", verdict) or re.search(
        r"beats the plain backbone by [+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\] points \(95%, 2 seeds", verdict), verdict
    # the last line: what this CPU confirmation could resolve, and where finer answers come from
    assert re.fullmatch(r"The CPU budget resolves differences to the plain backbone of about ±[\d.]+ points \(95%, 2 "
                        r"seeds\); answers below about a point need the GPU budget .*", stdout.strip().splitlines()[-1])


def test_mlflow_has_one_parent_and_a_nested_run_per_trial(search: tuple[Path, str]) -> None:
    folder, _ = search
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("attnas.role") == "search"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "e2e"
    # train.precision=auto (the default): the timed choice and its figures are on the parent run
    assert parent.data.tags["attnas.train_precision"] in {"fp32", "fp32+nhwc", "bf16+nhwc"}
    assert "img/s" in parent.data.tags["attnas.train_speed"] and parent.data.params["train.precision"] == "auto"
    assert parent.data.metrics["trials"] == TRIALS + len(CONTROLS)
    nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(nested) == len(runs) - 1
    children = [r for r in nested if r.data.tags.get("attnas.role") == "trial"]
    assert len(children) == TRIALS + len(CONTROLS)
    # controls: tagged, never stopped early
    controls = {r.data.tags["attnas.control"]: r for r in children if "attnas.control" in r.data.tags}
    assert set(controls) == set(CONTROLS)
    assert all(r.data.tags["attnas.outcome"] == "completed" and r.data.tags["attnas.epochs_run"] == str(EPOCHS)
               for r in controls.values())
    # no architecture trained twice within the search
    archs = [json.loads(Path(client.download_artifacts(r.info.run_id, "arch.json", str(folder))).read_text())
             for r in children]
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == len(archs)
    outcomes = [r.data.tags["attnas.outcome"] for r in children]
    assert set(outcomes) <= {"completed", "early_stopped"} and "completed" in outcomes
    assert parent.data.metrics["trials_early_stopped"] == outcomes.count("early_stopped")
    for run in children:
        assert run.info.status == "FINISHED"
        assert {"s0.attn", "s1.attn", "s2.attn", "s3.attn", "head"} <= set(run.data.params)
        history = client.get_metric_history(run.info.run_id, "val_acc")
        epochs = int(run.data.tags["attnas.epochs_run"])
        assert [m.step for m in history] == list(range(1, epochs + 1))
        assert all(0.0 <= m.value <= 1.0 for m in history)
        assert run.data.metrics["latency_ms"] > 0 and run.data.metrics["params_m"] > 0
        arch = json.loads((Path(client.download_artifacts(run.info.run_id, "arch.json", str(folder))).read_text()))
        for stage in range(4):  # a knob is logged only where the sampled type takes it
            kind = run.data.params[f"s{stage}.attn"]
            assert arch["stages"][stage]["attn"] == kind
    # the front: full-budget trials only, tagged, with reports on the parent
    completed = [r for r in children if r.data.tags["attnas.outcome"] == "completed"]
    front = [r for r in children if r.data.tags.get("pareto") == "true"]
    assert front and all(r in completed for r in front)
    for run in front:  # nothing in the completed set beats a front member on both objectives
        acc, ms = run.data.metrics["val_acc"], run.data.metrics["latency_norm_ms"]
        assert not any(o.data.metrics["val_acc"] > acc and o.data.metrics["latency_norm_ms"] < ms for o in completed)
    # the ranked latency is latency_rel times the plain backbone's latency measured alone at search start
    reference = float(parent.data.tags["attnas.reference_latency_ms"])
    for run in completed:
        assert run.data.metrics["latency_norm_ms"] == pytest.approx(run.data.metrics["latency_rel"] * reference, rel=1e-9)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "pareto")} == {
        "pareto/pareto.csv", "pareto/pareto.png"}
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    csv_path = Path(client.download_artifacts(parent.info.run_id, "pareto/pareto.csv", str(folder)))
    assert csv_path.read_text().count("\n") == len(completed) + 1


def test_confirmation_runs_and_the_confirmed_table_are_in_mlflow(search: tuple[Path, str]) -> None:
    folder, _ = search
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    runs = client.search_runs([experiment.experiment_id], max_results=200)
    (parent,) = [r for r in runs if r.data.tags.get("attnas.role") == "search"]
    confirm = [r for r in runs if r.data.tags.get("attnas.role") == "confirm"]
    assert all(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in confirm)
    by_name: dict[str, set[int]] = {}
    for run in confirm:
        assert run.info.status == "FINISHED" and 0.0 <= run.data.metrics["test_acc"] <= 1.0
        by_name.setdefault(run.data.tags["attnas.confirm_of"], set()).add(int(run.data.tags["attnas.seed"]))
    # on CPU the plain backbone and the front's pick (top_k=1) only: confirm.controls=plain by default
    assert "plain" in by_name and len(by_name) == 2
    # the confirmation trains in the arithmetic train.precision=auto measured, as the search's trials did
    precision, channels_last = CANDIDATES[parent.data.tags["attnas.train_precision"]]
    trials = [r for r in runs if r.data.tags.get("attnas.role") == "trial"]
    assert {(r.data.params["train.precision"], r.data.params["train.channels_last"]) for r in trials + confirm} == {
        (precision, json.dumps(channels_last))}
    assert all(seeds == set(SEEDS) for seeds in by_name.values())  # each (arch, seed) trained once, fresh seeds
    # a larger budget than the search's: more epochs per run, on more images (the parent's params say both)
    assert {r.data.tags["attnas.epochs_run"] for r in confirm} == {str(CONFIRM[0])}
    assert all(r.data.tags["attnas.epochs_run"] == str(EPOCHS) for r in trials
               if r.data.tags["attnas.outcome"] == "completed")
    assert len(client.get_metric_history(confirm[0].info.run_id, "val_acc")) == CONFIRM[0]
    params = parent.data.params
    assert (params["confirm.epochs"], params["confirm.train_size"]) == (str(CONFIRM[0]), str(CONFIRM[1]))
    assert (params["budget.epochs"], params["budget.train_size"]) == (str(EPOCHS), str(TRAIN_SIZE))
    csv_path = Path(client.download_artifacts(parent.info.run_id, "confirmation/confirmed.csv", str(folder)))
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("name,arch,seeds,n_seeds,test_acc_mean") and len(lines) == len(by_name) + 1
    assert lines[1].startswith("plain,") and ",reference," in lines[1]
    # the rank agreement: every confirmed row carries its search val_acc (controls and the front pick trained in
    # full), and the parent run has tau's n (and tau when it is defined)
    assert all(record["search_val_acc"] for record in csv.DictReader(lines))  # not empty
    assert parent.data.metrics["confirm.rank_n"] == len(by_name)
    assert all(any(f",{v}," in line for v in ("better", "worse", "within noise")) for line in lines[2:])
    assert "plain backbone" in parent.data.tags["attnas.verdict"]


def test_export_rebuilds_the_confirmed_pick_in_a_new_process(search: tuple[Path, str], run_cli) -> None:
    folder, _ = search
    result = run_cli(["search.export", "out=exported", "module_name=best_arch"], cwd=folder)
    package = folder / "exported" / "best_arch"
    assert f"to {package}/: README.md, __init__.py, model.onnx, model.pt2, model.safetensors" in result.stdout
    assert re.search(r"check model\.onnx +max abs diff \S+ \(onnxruntime .* 64 images\)", result.stdout)
    assert "registered models:/best_arch/1" in result.stdout
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'search'")
    better = not parent.data.tags["attnas.verdict"].startswith(("No placement", "With ", "Nothing was resolved"))  # a placement is named
    docstring = (package / "__init__.py").read_text().split('"""')[1]
    assert "test_acc" in docstring and "over 2 seeds on the official test split (1,000 images)" in docstring
    assert parent.data.params["data.test_images"] == "1000"  # data.test_size: a fixed subset, said where it is used
    assert "Verdict: " + ("better" if better else "reference") in docstring
    assert "The search's verdict: " + parent.data.tags["attnas.verdict"] in docstring  # with its resolution
    card = (package / "README.md").read_text()
    assert parent.data.tags["attnas.verdict"] in card and "| `model.onnx` | onnxruntime" in card
    assert "ONNX Runtime (CPUExecutionProvider)" in card and "models:/best_arch/1" in card
    picked = re.search(r"Confirmed \((\w+):", docstring).group(1)
    assert better or picked == "plain"  # nothing beat the plain backbone beyond noise: the plain backbone is exported
    (best,) = client.search_runs([experiment.experiment_id], filter_string=(
        f"tags.`attnas.confirm_of` = '{picked}' and tags.`attnas.seed` = '{SEEDS[0]}'"))
    reference = load_file(client.download_artifacts(best.info.run_id, "model/reference.safetensors", str(folder)))
    from safetensors.torch import save_file

    save_file(reference, str(folder / "ref.safetensors"))
    out = _run_without_this_package(_DEPLOY_CHECK, str(folder / "exported"), str(folder / "ref.safetensors"),
                                    f"sqlite:///{folder / 'mlflow.db'}", cwd=folder)
    assert f"test_acc {round(best.data.metrics['test_acc'], 6)}" in out
    assert "module onnx pt2 registry: all match" in out
    assert b"pickle" not in (package / "__init__.py").read_bytes()
    # a second export into the same folder is refused (nothing changes) unless overwrite=true
    again = subprocess.run([sys.executable, "-m", "search.export", "out=exported", "module_name=best_arch"], cwd=folder,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists; pass overwrite=true" in again.stderr


# Runs in a virtual environment that has torch, timm, safetensors, onnxruntime and mlflow but not this package.
_DEPLOY_CHECK = """
import importlib.util, sys
import torch, onnxruntime, mlflow
from safetensors.torch import load_file
assert not [m for m in ("backbones", "trials", "search", "spaces") if importlib.util.find_spec(m)], "attnas importable"
sys.path.insert(0, sys.argv[1])
from best_arch import load_model, METRICS
ref = load_file(sys.argv[2])
x, expected = ref["input"], ref["output"]
with torch.inference_mode():
    out = load_model()(x)
assert torch.allclose(out, expected, atol=1e-5), (out - expected).abs().max()
session = onnxruntime.InferenceSession(sys.argv[1] + "/best_arch/model.onnx", providers=["CPUExecutionProvider"])
onnx = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
assert torch.allclose(onnx, expected, atol=1e-4), (onnx - expected).abs().max()
pt2 = torch.export.load(sys.argv[1] + "/best_arch/model.pt2").module()(x)
assert torch.allclose(pt2, expected, atol=1e-5), (pt2 - expected).abs().max()
mlflow.set_tracking_uri(sys.argv[3])
registry = mlflow.pytorch.load_model("models:/best_arch/1")(x)
assert torch.allclose(registry, expected, atol=1e-5), (registry - expected).abs().max()
assert not [m for m in sys.modules if m.split(".")[0] in ("backbones", "trials", "search", "spaces")]
print("test_acc", METRICS["test_acc"])
print("module onnx pt2 registry: all match")
"""


def _run_without_this_package(code: str, *args: str, cwd: Path) -> str:
    """Run ``code`` in a fresh virtual environment whose only packages are this interpreter's installed ones,
    reached through a .pth line: a .pth file inside that folder (this package's editable-install finder) is not
    processed there, so attnas is not importable; no PYTHONPATH, cwd outside the repository."""
    import sysconfig
    import venv

    env_dir = cwd / "clean-venv"
    if not env_dir.exists():
        venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "installed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(python), "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_failing_trials_are_recorded_and_the_search_finishes(tmp_path: Path, run_cli) -> None:
    # only the plain control (CBAM r16/k7 survives lr=1e9 with a finite, huge loss)
    space = (REPO / "spaces" / "fashion_attention.yaml").read_text() + "\ncontrols: {}\n"
    (tmp_path / "plain_only.yaml").write_text(space.replace("name: fashion_attention", "name: plain_only"))
    result = run_cli(["search.run", f"space={tmp_path / 'plain_only.yaml'}", "name=diverging", "budget.trials=2",
                      "budget.epochs=1", "budget.train_size=256", "budget.val_size=128", "budget.lr=1e9",
                      "latency.runs=5", "train.precision=fp32"], cwd=tmp_path)
    # 2 searched trials and the plain control, all diverging
    assert "3 failed" in result.stdout and "no Pareto front" in result.stdout
    # The progress line names the error and where its traceback is; Ray's own tracebacks stay off the terminal.
    traces = re.findall(r"traceback: (runs/diverging/\w+/error\.txt)", result.stdout)
    assert len(traces) == 3 and all("TrialDiverged" in (tmp_path / t).read_text() for t in traces)
    assert "Traceback" not in result.stderr and "Trial task failed" not in result.stderr
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("attnas").experiment_id])
    trials = [r for r in runs if r.data.tags.get("attnas.role") == "trial"]
    assert len(trials) == 3
    for run in trials:
        assert run.info.status == "FAILED" and run.data.tags["attnas.outcome"] == "failed"
        assert "TrialDiverged: training diverged: loss is nan" in run.data.tags["attnas.error"]
    parent = next(r for r in runs if r.data.tags.get("attnas.role") == "search")
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_failed"] == 3
