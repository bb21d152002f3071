"""Register an exported model in the MLflow Model Registry, logged under the search's parent run.

The model is logged in MLflow's ``pt2`` format (``torch.export`` of the standalone module's model, traced on two
images so that the batch dimension stays dynamic; no pickle), so ``mlflow.pytorch.load_model("models:/MODULE/VERSION")``
needs torch, not this package.
MLflow docs: https://mlflow.org/docs/latest/ml/model-registry/
"""
from __future__ import annotations

import contextlib
import io
import warnings
from importlib.metadata import version

import mlflow
import torch
from mlflow.models import infer_signature
from torch import nn

LOGGED_NAME = "exported_model"  # the logged model's name under the parent run


def register(*, tracking_uri: str, parent_run_id: str, model: nn.Module, example: torch.Tensor, name: str) -> str:
    """Log ``model`` (eval mode) with its signature and input ``example`` (a batch of at least two images) under
    the parent run and register it as ``name``; returns ``models:/NAME/VERSION``."""
    with torch.inference_mode():
        output = model(example)
    signature = infer_signature(example.numpy(), output.numpy())
    requirements = [f"{p}=={version(p)}" for p in ("torch", "timm", "safetensors", "numpy", "pillow")]
    mlflow.set_tracking_uri(tracking_uri)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            mlflow.start_run(run_id=parent_run_id):
        warnings.simplefilter("ignore")
        info = mlflow.pytorch.log_model(model, name=LOGGED_NAME, serialization_format="pt2", signature=signature,
                                        input_example=example.numpy(), pip_requirements=requirements,
                                        registered_model_name=name)
    return f"models:/{name}/{info.registered_model_version}"
