"""The exported module's ``load_image`` is trials' own decoding and normalisation written out (one definition): it
reads an image exactly as a training image of a folder is read, and imports nothing of attnas."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from search.export import load_image_source
from trials.augment import normalize
from trials.image_folder import decode_image


def _exported_load_image(data: dict):
    source = load_image_source()
    namespace = {"__name__": "exported", "np": np, "torch": torch, "Path": Path, "DATA": data}
    exec(compile("from __future__ import annotations\n" + source, "exported", "exec"), namespace)  # noqa: S102
    return namespace["load_image"]


@pytest.mark.parametrize(("mode", "channels", "mean", "std"), [
    ("RGB", 3, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]), ("L", 1, [0.286], [0.353])])
def test_exported_load_image_equals_trials_decoding_and_normalisation(tmp_path: Path, mode: str, channels: int,
                                                                      mean: list[float], std: list[float]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).convert(mode).save(path)
    load_image = _exported_load_image({"image_shape": [channels, 32, 32], "mean": mean, "std": std})

    ours = load_image(path)
    trials_way = normalize(torch.from_numpy(decode_image(path, channels=channels, size=32))[None],
                           mean=tuple(mean), std=tuple(std))
    assert ours.shape == (1, channels, 32, 32) and ours.dtype == torch.float32
    assert torch.equal(ours, trials_way)


def test_exported_image_reader_imports_only_pil() -> None:
    tree = ast.parse(load_image_source())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"PIL"}, imported
    assert {node.name for node in tree.body if isinstance(node, ast.FunctionDef)} == {
        "read_pixels", "normalize", "load_image"}
