"""Smoke run of the segmentation ground-truth benchmark (two arms, two seeds, tiny sizes), so the script does not
rot; the full table is a separate, long run."""
from pathlib import Path

import pytest

from trials import DATASETS


def test_quick_run_prints_the_table(capsys, tmp_path: Path) -> None:
    if not Path(DATASETS["fashion_mnist"].default_root).is_dir():
        pytest.skip("Fashion-MNIST not installed (dataset-fashion-mnist)")
    from benchmarks.seg_ground_truth import main

    figures = main(["--quick", "--arms", "plain,gated_skips", "--out", str(tmp_path / "rows.csv")])
    out = capsys.readouterr().out
    assert "Command: `python -m benchmarks.seg_ground_truth --quick" in out and "| gated_skips | 2 |" in out
    assert set(figures) == {"plain_test_miou", "plain_test_miou_std", "gated_skips_test_miou",
                            "gated_skips_test_miou_std"}
    assert len((tmp_path / "rows.csv").read_text().splitlines()) == 1 + 2 * 2
