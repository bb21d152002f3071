"""The model card (README.md) of an exported folder: what the model is, how to load each artefact, how it was
checked, how fast it runs per runtime, and which versions made it."""
from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from backbones import ArchConfig
from search.outcomes import ACCURACY, Score

from .deploy_files import MAX_BATCH, ONNX_FILE, ONNX_OPSET, PT2_FILE, TOLERANCE, Check

_VERSIONED = ("torch", "timm", "safetensors", "onnx", "onnxruntime", "onnxscript", "mlflow")


def versions() -> dict[str, str]:
    """Versions of the packages an export used (``python`` and each of _VERSIONED that is installed)."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def model_card(*, module: str, search: str, arch: Mapping[str, Any], data: Mapping[str, Any] | None,
               note: str, metrics: Mapping[str, float], checks: Sequence[Check], images_from: str,
               latency_ms: Mapping[str, float], threads: int, registered: str | None,
               score: Score = ACCURACY) -> str:
    """README.md text. ``latency_ms``: runtime name -> median batch-1 latency; ``images_from``: where the check's
    images came from; ``registered``: the MLflow model URI, if registered; ``score``: the search's."""
    shape = data["image_shape"] if data else [arch["in_chans"], "H", "W"]
    stages = ArchConfig.from_dict(arch).to_dict()["stages"]
    arch_lines = "\n".join(f"| {i} | {s['attn']} | {', '.join(f'{k}={v}' for k, v in s.items() if k != 'attn')} |"
                           for i, s in enumerate(stages))
    if arch.get("decoder"):  # a U-Net (task segment): its decoder blocks and skips, and logits per pixel
        arch_lines += "\n\n| decoder block | attention | knobs |\n|---|---|---|\n" + "\n".join(
            f"| {j} | {b['attn']} | {', '.join(f'{k}={v}' for k, v in b.items() if k != 'attn')} |"
            for j, b in enumerate(arch["decoder"]))
        arch_lines += f"\n\nSkips (stage 0..{len(arch['skips']) - 1}): {', '.join(arch['skips'])}."
        output = (f"`(N, {arch['num_classes']}, H, W)` logits per pixel; `predict(images)` gives the `(N, H, W)` "
                  f"masks (their argmax)")
    else:
        output = f"`(N, {arch['num_classes']})` logits; `predict(images)` gives the `(N,)` labels"
    classes = ", ".join(map(str, data.get("classes") or [])) if data else ""
    norm = (f"pixels on the 0–1 scale, then `(x − mean) / std` per channel with mean {data['mean']} and std "
            f"{data['std']}" if data else "see the module's DATA")
    check_rows = "\n".join(f"| `{c.artefact}` | {c.how} | {c.images} | {c.max_abs_diff:.2e} | "
                           f"{'pass' if c.passed else 'FAIL'} |" for c in checks)
    latency_rows = "\n".join(f"| {runtime} | {ms:.3f} |" for runtime, ms in latency_ms.items())
    version_text = ", ".join(f"{k} {v}" for k, v in versions().items())
    registry = (f"\nMLflow Model Registry: `{registered}` (logged under the search's parent run):\n\n```python\n"
                f"import mlflow\nmodel = mlflow.pytorch.load_model(\"{registered}\")   # needs torch only (a torch.export program)\n"
                f"```\n" if registered else "")
    return f"""# {module}

Exported by attnas (`python -m search.export`) from search `{search}`: the {arch['backbone']} backbone
({'small-input stem' if arch.get('small_input') else 'ImageNet stem'}, head `{arch.get('head', 'avg')}`) with
attention per stage:

| stage | attention | knobs |
|---|---|---|
{arch_lines}

**Input**: float32 tensor `(N, {', '.join(map(str, shape))})`; {norm}. `load_image(path)` does this for an image
file. **Output**: {output}{f'; classes by label: {classes}' if classes else ''}.

## What the search found

{note.strip() or f'No confirmation was run: this is the Pareto-front trial of highest {score.val} in the search.'}

Metrics of the exported run: {', '.join(f'{k}={v}' for k, v in metrics.items())}.

## Load it

Nothing here imports attnas: torch and timm (and safetensors) are enough.

```python
import sys; sys.path.insert(0, "PARENT_OF_THIS_FOLDER")
from {module} import load_model, load_image
model = load_model()                      # eval mode, weights from model.safetensors
logits = model(load_image("photo.png"))
```

ONNX (opset {ONNX_OPSET}, dynamic batch) in ONNX Runtime:

```python
import onnxruntime as ort
session = ort.InferenceSession("{ONNX_FILE}", providers=["CPUExecutionProvider"])
logits = session.run(None, {{"images": images.numpy()}})[0]
```

torch.export program (dynamic batch 1..{MAX_BATCH}):

```python
import torch
model = torch.export.load("{PT2_FILE}").module()
```
{registry}
## Checked at export

Each artefact's logits were compared with the eager model's (the module with the trial's own saved output on its
reference input; ONNX and torch.export on {images_from}); tolerance {TOLERANCE:g} max abs difference:

| artefact | run by | images | max abs diff | |
|---|---|---|---|---|
{check_rows}

## Latency

Median of 30 batch-1 forward passes after 10 warm-up ones, {threads} thread(s), CPU `{platform.processor() or platform.machine()}`,
measured at export on the exporting machine (rank runtimes on yours before trusting the absolute numbers):

| runtime | latency_ms |
|---|---|
{latency_rows}

## Versions

{version_text}.

```json
{json.dumps(dict(arch), indent=1, sort_keys=True)}
```
"""
