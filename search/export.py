"""``python -m search.export [search=NAME] [max_latency_ms=X] [out=DIR]``: the best front model as a Python module.

Picks a trial from a search's Pareto front (default: the latest search, highest ``val_acc``; with
``max_latency_ms``, the most accurate trial within that latency), then writes ``OUT/NAME.py`` (its ArchConfig and a
``build_model()`` that rebuilds it through ``backbones.build``) and ``OUT/NAME.safetensors`` (its weights). The
export is verified before it is reported: the module, imported afresh, must reproduce the trial's reference output.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pprint
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import mlflow
from mlflow.entities import RunStatus

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
import torch
from omegaconf import DictConfig

from search.execution.artifacts import ARCH, REFERENCE, WEIGHTS, load_reference
from search.settings import cli
from search.settings.config import ExportConfig, export_settings
from search.settings.errors import UserError, exit_on_bad_input
from search.confirm.statistics import Confirmed, Verdict, points, read_confirmed_csv
from search.outcomes import (CONFIRM_TAG, CONFIRMED_CSV, DATA_JSON, OUTCOME_TAG, PARETO_TAG, ROLE_TAG, SEARCH_ROLE, SEARCH_TAG,
                             SEED_TAG, TEST_IMAGES_PARAM, VERDICT_TAG, test_split_text)
from search.settings.tracking_uri import check_tracking_uri, sqlite_path

_TEMPLATE = '''"""{title}

Exported by attnas (python -m search.export) from search {search!r}, trial {trial_id} (MLflow run {run_id}).
{confirmed}Metrics of this run: {metrics}.
Input: float tensor of shape (N, {shape}), normalised with the dataset's mean/std ({dataset}; DATA below).

    from {module} import build_model, load_image, DATA
    model = build_model()          # eval mode, trained weights from {module}.safetensors beside this file
    scores = model(load_image("photo.jpg"))          # an image file, decoded and normalised as in training
    label = int(scores.argmax())                     # DATA["classes"][label] names it (when the data has names)
"""

from pathlib import Path

import torch
from safetensors.torch import load_model
from torch import nn

from backbones import build

ARCH = {arch}
METRICS = {metrics_literal}
# The training data: image_shape (C, H, W), per-channel mean/std on the 0-1 scale, class names by label.
DATA = {data_literal}
WEIGHTS = Path(__file__).with_name("{module}.safetensors")


def build_model(*, pretrained: bool = True) -> nn.Module:
    """Rebuild the architecture; with ``pretrained`` load the exported weights. Returns the model in eval mode."""
    model = build(ARCH)
    if pretrained:
        load_model(model, str(WEIGHTS))
    return model.eval()


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as this model's input (1, C, H, W): converted to DATA's channels, resized to its size and
    normalised with its mean/std, as the training images were (trials.image_folder.decode_image)."""
    from trials.augment import normalize
    from trials.image_folder import decode_image

    if DATA is None:
        raise RuntimeError("this export predates DATA: normalise the input by hand (see the module docstring)")
    channels, side, _ = DATA["image_shape"]
    pixels = torch.from_numpy(decode_image(path, channels=channels, size=side))[None]
    return normalize(pixels, mean=tuple(DATA["mean"]), std=tuple(DATA["std"]))
'''


@dataclass(frozen=True)
class Exported:
    module_path: Path
    weights_path: Path
    run_id: str
    max_abs_diff: float  # between the trial's reference output and the exported module's output
    note: str = ""  # the confirmed figures and verdict written into the module's docstring ("" without confirmation)


def export(cfg: DictConfig | ExportConfig) -> Exported:
    """Export one front trial of a search as configured; raises :class:`UserError` for bad input."""
    cfg = export_settings(cfg)  # typed; types and ranges checked (search.settings.config)
    uri = cfg.mlflow.tracking_uri
    check_tracking_uri(uri)
    if (database := sqlite_path(uri)) is not None and not database.is_file():
        raise UserError(f"no MLflow store at {uri}; run 'python -m search.run' first (or set mlflow.tracking_uri=)")
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is None:
        raise UserError(f"no experiment {cfg.mlflow.experiment!r} in {uri}; run 'python -m search.run' first")
    parent = _find_search(client, experiment.experiment_id, search=cfg.search)
    search_name = parent.data.tags.get(SEARCH_TAG, parent.info.run_name)
    confirmed = _confirmed_table(client, parent)
    if confirmed is None:  # confirm.enabled=false: the most accurate front trial on the search's own val_acc
        run, note = _pick(client, experiment.experiment_id, parent=parent, max_latency_ms=cfg.max_latency_ms), ""
    else:
        run, note = _pick_confirmed(client, experiment.experiment_id, parent=parent, rows=confirmed,
                                    max_latency_ms=cfg.max_latency_ms)
    module = cfg.module_name or re.sub(r"\W", "_", f"attnas_{search_name}").lower()
    if not module.isidentifier():
        raise UserError(f"module_name={module!r} is not a valid Python identifier")
    out = Path(cfg.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run.info.run_id, "model", tmp))
        arch = json.loads(Path(client.download_artifacts(run.info.run_id, ARCH, tmp)).read_text())
        reference_input, reference_output = load_reference(local / REFERENCE)
        weights_path = out / f"{module}.safetensors"
        shutil.copyfile(local / WEIGHTS, weights_path)
    # a confirmation run's own probe is a token one (its latency is the one measured alone, in the note)
    keys = ("test_acc", "val_acc", "params_m", "flops_g") if note else ("val_acc", "latency_ms", "params_m", "flops_g")
    metrics = {k: round(run.data.metrics[k], 6) for k in keys if k in run.data.metrics}
    module_path = out / f"{module}.py"
    module_path.write_text(_TEMPLATE.format(
        title=f"Attention-placement architecture {module}", search=search_name, trial_id=run.info.run_name,
        run_id=run.info.run_id, confirmed=note, metrics=", ".join(f"{k}={v}" for k, v in metrics.items()),
        shape=", ".join(str(d) for d in reference_input.shape[1:]), dataset=parent.data.params.get("dataset", "?"),
        module=module, arch=pprint.pformat(arch, indent=4, sort_dicts=True), metrics_literal=repr(metrics),
        data_literal=pprint.pformat(_data_info(client, parent), indent=4, sort_dicts=True, compact=True)))
    diff = _verify(module_path, reference_input, reference_output)
    return Exported(module_path=module_path, weights_path=weights_path, run_id=run.info.run_id, max_abs_diff=diff,
                    note=note)


def _data_info(client: mlflow.MlflowClient, parent: Any) -> dict[str, Any] | None:
    """The search's data description (search.outcomes.DATA_JSON on the parent run), or None for older searches."""
    folder = DATA_JSON.rsplit("/", 1)[0]
    if not any(a.path == DATA_JSON for a in client.list_artifacts(parent.info.run_id, folder)):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(parent.info.run_id, DATA_JSON, tmp)).read_text())


def _confirmed_table(client: mlflow.MlflowClient, parent: Any) -> list[Confirmed] | None:
    """The search's confirmed table (``confirmation/confirmed.csv`` on the parent run), or None without one."""
    if not any(a.path.endswith(CONFIRMED_CSV) for a in client.list_artifacts(parent.info.run_id, "confirmation")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return read_confirmed_csv(client.download_artifacts(parent.info.run_id, f"confirmation/{CONFIRMED_CSV}", tmp))


def _pick_confirmed(client: mlflow.MlflowClient, experiment: str, *, parent: Any, rows: list[Confirmed],
                    max_latency_ms: float | None) -> tuple[Any, str]:
    """The most accurate confirmed architecture that beats the plain backbone beyond noise (within
    ``max_latency_ms``, as measured alone), else the plain backbone; the run is its first confirmation seed's."""
    fits = [r for r in rows if max_latency_ms is None or (r.latency_ms is not None and r.latency_ms <= max_latency_ms)]
    if not fits:
        fastest = min((r.latency_ms for r in rows if r.latency_ms is not None), default=float("nan"))
        raise UserError(f"max_latency_ms={max_latency_ms}: no confirmed architecture is that fast; the fastest "
                        f"takes {fastest:.3f} ms")
    better = [r for r in fits if r.verdict == Verdict.BETTER]
    reference = next((r for r in fits if r.verdict == Verdict.REFERENCE), None)
    pick = max(better, key=lambda r: r.mean) if better else reference or max(fits, key=lambda r: r.mean or 0.0)
    runs = client.search_runs([experiment], max_results=1000, filter_string=(
        f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.`{CONFIRM_TAG}` = '{pick.name}'"))
    runs = sorted((r for r in runs if r.data.tags.get(OUTCOME_TAG) == "completed"),
                  key=lambda r: int(r.data.tags.get(SEED_TAG, 0)))
    if not runs:
        raise UserError(f"search {parent.info.run_name!r}: no finished confirmation run of {pick.name!r}")
    why = ("it beats the plain backbone beyond seed noise" if pick.verdict == Verdict.BETTER else
           "no confirmed placement beats it beyond seed noise" if pick.verdict == Verdict.REFERENCE else
           "the plain backbone is over max_latency_ms; no confirmed placement within it beats the plain backbone")
    diff = ("" if pick.diff_mean is None or pick.verdict == Verdict.REFERENCE else
            f"; difference to the plain backbone {points(pick.diff_mean)} [{points(pick.diff_ci_low)}, "
            f"{points(pick.diff_ci_high)}] points (95% over all candidates, paired by seed)"
            if pick.diff_ci_low is not None else f"; difference to the plain backbone {points(pick.diff_mean)} points")
    std = f" ± {pick.std:.4f}" if pick.std is not None else ""
    latency = f", latency_ms {pick.latency_ms:.3f} (measured alone)" if pick.latency_ms is not None else ""
    note = (f"Confirmed ({pick.name}: {pick.arch_text}): test_acc {pick.mean:.4f}{std} over {pick.n} seeds on "
            f"{test_split_text(_test_images(parent))}{diff}{latency}.\nVerdict: {pick.verdict}; picked because {why}. "
            f"The search's verdict: {parent.data.tags.get(VERDICT_TAG, 'none recorded')}\n"
            f"Weights: the seed-{runs[0].data.tags.get(SEED_TAG)} confirmation run.\n")
    return runs[0], note


def _find_search(client: mlflow.MlflowClient, experiment: str, *, search: str) -> Any:
    query = f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'"
    if search != "latest":
        query += f" and tags.`attnas.search` = '{search}'"
    runs = client.search_runs([experiment], filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=200)
    finished = [r for r in runs if r.info.status == RunStatus.to_string(RunStatus.FINISHED)]
    if not finished:
        names = sorted({r.data.tags.get(SEARCH_TAG, "") for r in client.search_runs(
            [experiment], filter_string=f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'", max_results=200)} - {""})
        what = "no finished search" if search == "latest" else f"no finished search named {search!r}"
        raise UserError(f"{what} in the tracking store; finished searches: {', '.join(names) or 'none'}")
    return finished[0]


def _pick(client: mlflow.MlflowClient, experiment: str, *, parent: Any, max_latency_ms: Any) -> Any:
    front = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.{PARETO_TAG} = 'true'",
        max_results=1000)
    if not front:
        raise UserError(f"search {parent.info.run_name!r} has no Pareto front (no trial completed its full budget)")
    candidates = front
    if max_latency_ms is not None:
        candidates = [r for r in front if r.data.metrics["latency_ms"] <= float(max_latency_ms)]
        if not candidates:
            fastest = min(r.data.metrics["latency_ms"] for r in front)
            raise UserError(f"max_latency_ms={max_latency_ms}: no front trial is that fast; the fastest takes "
                            f"{fastest:.3f} ms")
    return max(candidates, key=lambda r: (r.data.metrics["val_acc"], -r.data.metrics["latency_ms"]))


def _verify(module_path: Path, reference_input: torch.Tensor, reference_output: torch.Tensor) -> float:
    """Import the written module as a user would and compare its output with the trial's reference output."""
    spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.inference_mode():
        output = module.build_model()(reference_input)
    diff = float((output - reference_output).abs().max())
    if not torch.allclose(output, reference_output, atol=1e-4, rtol=1e-4):
        raise RuntimeError(f"exported module {module_path} does not reproduce the trial's output (max diff {diff:g})")
    return diff


@hydra.main(config_path=None, config_name="export", version_base=None)  # search.settings.config.ExportConfig
def _hydra_main(cfg: DictConfig) -> None:
    with exit_on_bad_input():
        _export_and_report(cfg)


def _export_and_report(cfg: DictConfig) -> None:
    result = export(cfg)
    if result.note:
        print(result.note.rstrip())
    print(f"Exported MLflow run {result.run_id}:\n  module  {result.module_path}\n  weights {result.weights_path}\n"
          f"  check   output matches the trial's reference output (max abs diff {result.max_abs_diff:.2e})\n"
          f"Use it:   PYTHONPATH={result.module_path.parent} python -c \"from {result.module_path.stem} import "
          f"build_model; print(build_model())\"", file=sys.stdout, flush=True)


def _test_images(parent: Any) -> int | None:
    """How many test images the search's confirmation scored (its parent run's param; None for older searches)."""
    value = parent.data.params.get(TEST_IMAGES_PARAM)
    return int(value) if value else None


def main(argv: list[str] | None = None) -> None:
    """``python -m search.export ARGS``: compose the config from the overrides (:mod:`search.settings.cli`) and export."""
    cli.main(_export_and_report, _hydra_main, config_name="export", argv=argv)


if __name__ == "__main__":
    main()
