"""mask_folder: the user's images/ + masks/ load as MaskData (grayscale and palette masks); every bad input is one
line naming the bad value, exit code 2 from ``python -m trials``, and nothing written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trials import DatasetError, load_segmentation

REPO = Path(__file__).resolve().parents[2]


def _folder(root: Path, *, count: int = 10, side: int = 20, palette: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        mask = np.zeros((side, side), dtype=np.uint8)
        mask[2:side // 2, 3:side // 2] = 1 + i % 2
        image = (rng.integers(0, 60, (side, side, 3)) + 150 * (mask > 0)[..., None]).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"s{i:02d}.jpg" if i % 2 else root / "images" / f"s{i:02d}.png")
        m = Image.fromarray(mask)
        if palette:
            m = m.convert("P")
            m.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        m.save(root / "masks" / f"s{i:02d}.png")
    return root


@pytest.mark.parametrize("palette", [False, True])
def test_loads_grayscale_and_palette_masks(tmp_path: Path, palette: bool) -> None:
    root = _folder(tmp_path / "data", palette=palette)
    data = load_segmentation("mask_folder", root=root, val_size=2, test=True, cache=tmp_path / "cache")
    assert data.num_classes == 3 and data.in_chans == 3 and data.image_shape == (3, 32, 32)
    assert len(data.train_y) + len(data.val_y) + len(data.test_y) == 10 and len(data.test_y) == 2
    assert set(np.unique(data.train_y.numpy())) <= {0, 1, 2} and data.train_y.shape[1:] == (32, 32)
    again = load_segmentation("mask_folder", root=root, val_size=2, test=True, cache=tmp_path / "cache")
    assert (again.train_y == data.train_y).all() and (again.test_x == data.test_x).all()


def _missing_mask(root: Path) -> str:
    (root / "masks" / "s03.png").unlink()
    return f"image {root / 'images' / 's03.jpg'} has no mask {root / 'masks' / 's03.png'}"


def _mask_without_image(root: Path) -> str:
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "masks" / "zz.png")
    return f"mask {root / 'masks' / 'zz.png'} has no image of the same stem"


def _size_mismatch(root: Path) -> str:
    Image.fromarray(np.zeros((18, 20), np.uint8)).save(root / "masks" / "s04.png")
    return f"mask {root / 'masks' / 's04.png'} is 20×18 px but image {root / 'images' / 's04.png'} is 20×20 px"


def _index_out_of_range(root: Path) -> str:
    (root / "classes.txt").write_text("background\nobject\n")
    return f"mask {root / 'masks' / 's01.png'} has class index 2, out of range: {root / 'classes.txt'} names 2 classes"


def _void_label(root: Path) -> str:
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(root / "masks" / "s05.png")
    return f"mask {root / 'masks' / 's05.png'} has class index 255, out of range: 255 is the void/ignore label"


def _rgb_mask(root: Path) -> str:
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "masks" / "s06.png")
    return f"mask {root / 'masks' / 's06.png'} has mode RGB"


def _empty(root: Path) -> str:
    for path in [*root.glob("*/*")]:
        path.unlink()
    return f"{root / 'images'} has no images"


def _no_masks_folder(root: Path) -> str:
    for path in root.glob("masks/*"):
        path.unlink()
    (root / "masks").rmdir()
    return f"data.root={root} has no masks/ folder"


CASES = [_missing_mask, _mask_without_image, _size_mismatch, _index_out_of_range, _void_label, _rgb_mask, _empty,
         _no_masks_folder]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, case) -> None:
    root = _folder(tmp_path / "data")
    expected = case(root)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as err:
        load_segmentation("mask_folder", root=root, val_size=2, cache=cache)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not cache.exists()


def test_cli_exit_code_2_with_one_error_line(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    expected = _size_mismatch(root)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "trials", "mask_folder", str(root)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {expected}; a mask has its image's size"]
    assert not (tmp_path / ".cache").exists()
