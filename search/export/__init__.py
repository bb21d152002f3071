"""``python -m search.export [search=NAME] [max_latency_ms=X] [out=DIR] [overwrite=true]``: the confirmed pick of a
search as a folder that deploys without this package.

Picks the run (:mod:`search.export.pick`: the most accurate architecture confirmed better than the plain backbone,
else the plain backbone; without a confirmation the most accurate front trial), then writes ``OUT/MODULE/``:

- ``__init__.py``: a standalone module (torch + timm; the attention modules the architecture uses written out as
  source, :mod:`backbones.standalone`): ``load_model()`` (eval mode, weights loaded), ``build_model()``, ``predict()``
  (labels, or masks for a segmentation model),
  ``load_image(path)``, ``ARCH``, ``DATA``, ``METRICS``; ``from MODULE import load_model`` with OUT on the path;
- ``model.safetensors`` (the weights), ``model.onnx`` (opset 18, dynamic batch), ``model.pt2`` (``torch.export``);
- ``README.md``: the model card (architecture, input and normalisation, classes, confirmed figures and verdict,
  the checks, latency per runtime, versions).

Every artefact is checked against the eager model on real test images (:mod:`search.export.deploy_files`) and the
module against the trial's saved reference output, before the folder appears (it is built beside and moved into
place, so a failed export leaves nothing). Then the model is registered in the MLflow Model Registry under the
search's parent run (``register=false`` skips it).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import mlflow
import torch
from omegaconf import DictConfig

from backbones.standalone import standalone_source
from search.execution.checkpoint import ARCH, REFERENCE, WEIGHTS, load_reference
from search.export.deploy_files import ONNX_FILE, PT2_FILE, Check, check, write_onnx, write_pt2
from search.export.card import model_card
from search.export.pick import confirmed_table, data_info, find_search, pick_confirmed, pick_front
from search.export.registry import register
from search.log import tell
from search.outcomes import FLOPS_G, LATENCY_MS, PARAMS_M, SCORES, SEARCH_TAG
from search.settings import cli
from search.settings.config import ExportConfig, export_settings
from search.settings.errors import UserError, exit_on_bad_input
from search.settings.tracking_uri import check_tracking_uri, sqlite_path
from trials import TRIAL_TASKS, DatasetMissingError, ProbeConfig, load_dataset, measure_latency
from trials.augment import normalize
from trials.runtime import RUNTIMES

WEIGHTS_FILE, CARD_FILE = "model.safetensors", "README.md"
CHECK_IMAGES = 64  # test images every artefact is checked on
LATENCY_THREADS = 1  # threads of the card's latency figures (the CPU budget's trials run on one)
RUNTIME_NAMES = {"torch": f"PyTorch {torch.__version__} eager", "onnxruntime": "ONNX Runtime (CPUExecutionProvider)"}


# The module's image reader over trials' two functions (written out by load_image_source)
_LOAD_IMAGE = '''def load_image(path: str | Path) -> torch.Tensor:
    """An image file as this model's input (1, C, H, W): converted to DATA's channels (L or RGB), resized
    bilinearly to its size (aspect ratio not kept) and normalised with its mean/std, as the training images were."""
    channels, side, _ = DATA["image_shape"]
    pixels = torch.from_numpy(np.ascontiguousarray(read_pixels(path, channels=channels, size=side)))
    return normalize(pixels[None], mean=tuple(DATA["mean"]), std=tuple(DATA["std"]))
'''
# The module's predict: labels of a classifier, masks of a segmentation model (the same argmax over classes)
PREDICT_SOURCE = '''

import functools


@functools.lru_cache(maxsize=1)
def _loaded() -> nn.Module:
    return load_model()


def predict(images: torch.Tensor) -> torch.Tensor:
    """The class of each image (N,) of a classifier, or of each pixel (N, H, W masks) of a segmentation model, for
    normalised images (N, C, H, W) such as load_image gives: the argmax of the logits over classes."""
    with torch.inference_mode():
        return _loaded()(images).argmax(dim=1)
'''
# the usage line of the module's docstring, per task (DATA['classes'] names a label or a mask value)
_PREDICTS = {"classify": "label = int(predict(load_image('photo.jpg')))   # DATA['classes'][label]",
             "segment": "mask = predict(load_image('photo.png'))[0]   # H x W class per pixel; DATA['classes'][v]"}


def load_image_source() -> str:
    """The exported module's ``load_image`` with what it calls, as source: trials' own
    :func:`trials.image_folder.read_pixels` and :func:`trials.augment.normalize` written out (``inspect.getsource``;
    they use only PIL, numpy and torch), so the module reads an image as the training images were read, one
    definition for both, without importing attnas."""
    from trials.image_folder import read_pixels

    return "\n\n" + "\n\n".join(inspect.getsource(f) for f in (read_pixels, normalize)) + "\n\n" + _LOAD_IMAGE


@dataclass(frozen=True)
class Exported:
    folder: Path  # OUT/MODULE
    run_id: str
    checks: list[Check]
    latency_ms: dict[str, float]  # runtime -> median batch-1 latency at export
    registered: str | None = None  # models:/NAME/VERSION
    note: str = ""  # the confirmed figures and verdict ("" without confirmation)
    files: list[str] = field(default_factory=list)

    @property
    def module_path(self) -> Path:
        return self.folder / "__init__.py"


def export(cfg: DictConfig | ExportConfig) -> Exported:
    """Export the pick of a search as configured; raises :class:`UserError` for bad input (nothing written)."""
    cfg = export_settings(cfg)  # typed; types and ranges checked (search.settings.config)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars among the export's lines
    uri = cfg.mlflow.tracking_uri
    check_tracking_uri(uri)
    if (database := sqlite_path(uri)) is not None and not database.is_file():
        raise UserError(f"no MLflow store at {uri}; run 'python -m search.run' first (or set mlflow.tracking_uri=)")
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(cfg.mlflow.experiment)
    if experiment is None:
        raise UserError(f"no experiment {cfg.mlflow.experiment!r} in {uri}; run 'python -m search.run' first")
    parent = find_search(client, experiment.experiment_id, search=cfg.search)
    search_name = parent.data.tags.get(SEARCH_TAG, parent.info.run_name)
    module = cfg.module_name or re.sub(r"\W", "_", f"attnas_{search_name}").lower()
    if not module.isidentifier():
        raise UserError(f"module_name={module!r} is not a valid Python identifier")
    folder = Path(cfg.out).expanduser().resolve() / module
    if folder.exists() and not cfg.overwrite:
        raise UserError(f"out={cfg.out}: {folder} already exists; pass overwrite=true to replace it, or choose "
                        f"another out= or module_name=")
    info = data_info(client, parent)
    task = TRIAL_TASKS[(info or {}).get("task", "classify")]  # what the model computes: labels, or masks
    score = SCORES[task.metric]
    confirmed = confirmed_table(client, parent)
    if confirmed is None:  # confirm.enabled=false: the front trial of highest score on the search's own val split
        run, note = pick_front(client, experiment.experiment_id, parent=parent, max_latency_ms=cfg.max_latency_ms,
                               metric=score.val), ""
    else:
        run, note = pick_confirmed(client, experiment.experiment_id, parent=parent, rows=confirmed,
                                   max_latency_ms=cfg.max_latency_ms, score=score)
    # a confirmation run's own probe is a token one (its latency is the one measured alone, in the note)
    scores = (score.test, *score.also_test, score.val, *score.also_val) if note else (score.val, *score.also_val)
    keys = (*scores, PARAMS_M, FLOPS_G) if note else (*scores, LATENCY_MS, PARAMS_M, FLOPS_G)
    metrics = {k: round(run.data.metrics[k], 6) for k in keys if k in run.data.metrics}
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{module}-") as tmp:
        staging = Path(tmp) / module
        staging.mkdir()
        local = Path(client.download_artifacts(run.info.run_id, "model", tmp))
        arch = json.loads(Path(client.download_artifacts(run.info.run_id, ARCH, tmp)).read_text())
        reference_input, reference_output = load_reference(local / REFERENCE)
        shutil.copyfile(local / WEIGHTS, staging / WEIGHTS_FILE)
        docstring = (f"Attention-placement architecture {module}, exported by attnas (python -m search.export) from "
                     f"search {search_name!r}, trial {run.info.run_name} (MLflow run {run.info.run_id}).\n"
                     f"{note}Metrics of this run: {', '.join(f'{k}={v}' for k, v in metrics.items())}.\n"
                     f"Needs torch and timm only. README.md beside this file is the model card.\n\n"
                     f"    from {module} import load_model, load_image, DATA\n"
                     f"    model = load_model()            # eval mode, weights from {WEIGHTS_FILE}\n"
                     f"    {_PREDICTS[task.name]}")
        (staging / "__init__.py").write_text(standalone_source(
            arch, docstring=docstring, weights=WEIGHTS_FILE, constants={"METRICS": metrics, "DATA": info},
            extra=load_image_source() + PREDICT_SOURCE))
        model = _import(staging, module).load_model()
        with torch.inference_mode():
            checks = [check(artefact="__init__.py", how=f"load_model() ({WEIGHTS_FILE}) vs the trial's saved output",
                            expected=reference_output, got=model(reference_input))]
        images, images_from = _check_images(info, fallback=reference_input, load=task.load)
        checks.append(write_onnx(model, images=images, path=staging / ONNX_FILE))
        checks.append(write_pt2(model, images=images, path=staging / PT2_FILE))
        latency = _latencies(model, input_shape=tuple(images.shape[1:]))
        card = dict(module=module, search=search_name, arch=arch, data=info, note=note, metrics=metrics, score=score,
                    checks=checks, images_from=images_from, latency_ms=latency, threads=LATENCY_THREADS)
        (staging / CARD_FILE).write_text(model_card(**card, registered=None))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    registered = None
    if cfg.register:
        registered = register(tracking_uri=uri, parent_run_id=parent.info.run_id,
                              model=_import(folder, module).load_model(), example=images[:2], name=module)
        (folder / CARD_FILE).write_text(model_card(**card, registered=registered))
    return Exported(folder=folder, run_id=run.info.run_id, checks=checks, latency_ms=latency, registered=registered,
                    note=note, files=sorted(p.name for p in folder.iterdir()))


def _import(package: Path, name: str) -> Any:
    """Import the written package from ``package`` (its folder) under ``name``, as a user would, afresh."""
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined in it pickle by reference to it (the registry's pickle)
    spec.loader.exec_module(module)
    return module


def _check_images(info: dict[str, Any] | None, *, fallback: torch.Tensor,
                  load: Any = load_dataset) -> tuple[torch.Tensor, str]:
    """CHECK_IMAGES normalised images of the search's test split (read by the task's ``load``), or ``fallback`` (the
    reference input, standard normal noise) when the data cannot be read here; with a phrase saying which."""
    if info is not None:
        try:
            data = load(info["dataset"], root=info.get("root") or None, train_size=1, val_size=1, test=True,
                        test_size=CHECK_IMAGES, image_size=info["image_shape"][1])
            images = normalize(data.test_x[:CHECK_IMAGES], mean=tuple(info["mean"]), std=tuple(info["std"]))
            return images, f"test-split images of {info['dataset']}"
        except (ValueError, OSError, DatasetMissingError) as err:
            reason = " ".join(str(err).split())[:200]
            return fallback, f"the trial's reference input (random normal): the data could not be read ({reason})"
    return fallback, "the trial's reference input (random normal): the search recorded no data description"


def _latencies(model: torch.nn.Module, *, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Median batch-1 latency (ms) in each probe runtime (eager PyTorch, ONNX Runtime), LATENCY_THREADS threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(LATENCY_THREADS)
    try:
        return {RUNTIME_NAMES[runtime]: measure_latency(model, ProbeConfig(batch=0, runtime=runtime),
                                                        input_shape=input_shape, device="cpu")[LATENCY_MS]
                for runtime in RUNTIMES}
    finally:
        torch.set_num_threads(threads)


@hydra.main(config_path=None, config_name="export", version_base=None)  # search.settings.config.ExportConfig
def _hydra_main(cfg: DictConfig) -> None:
    with exit_on_bad_input():
        _export_and_report(cfg)


def _export_and_report(cfg: DictConfig) -> None:
    result = export(cfg)
    if result.note:
        tell(result.note.rstrip())
    lines = [f"Exported MLflow run {result.run_id} to {result.folder}/: {', '.join(result.files)}"]
    lines += [f"  check {c.artefact:<18} max abs diff {c.max_abs_diff:.2e} ({c.how}, {c.images} images)"
              for c in result.checks]
    lines += [f"  latency {runtime}: {ms:.3f} ms (batch 1, {LATENCY_THREADS} thread)"
              for runtime, ms in result.latency_ms.items()]
    if result.registered:
        lines.append(f"  registered {result.registered} (mlflow.pytorch.load_model; the MLflow UI's Models page)")
    lines.append(f"Use it:   PYTHONPATH={result.folder.parent} python -c \"from {result.folder.name} import "
                 f"load_model; print(load_model())\"   (model card: {result.folder / CARD_FILE})")
    tell("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    """``python -m search.export ARGS``: compose the config from the overrides (:mod:`search.settings.cli`) and export."""
    cli.main(_export_and_report, _hydra_main, config_name="export", argv=argv)
