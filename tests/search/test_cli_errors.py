"""Bad input through the real CLI: one line on stderr naming the bad value, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["space=nope"], "unknown space 'nope'; available spaces: cifar_attention, fashion_attention"),
        (["space=cifar_attention", "data.root={tmp}/cifar", "data.download=false"], "dataset 'cifar10' not found"),
        (["space=cifar_attention", "data.root={tmp}/cifar"], "dataset 'cifar10' not found"),
        (["sampler=annealing"], "unknown sampler 'annealing'; valid samplers: tpe, nsga2, random"),
        (["budget.epochs=0"], "epochs=0 must be a positive integer"),
        (["budget.backbone=resnet_nope"], "resnet_nope"),
        (["data.root={tmp}/nowhere"], "fashion_mnist"),
        (["mlflow.tracking_uri=http://127.0.0.1:9"], "MLflow tracking server http://127.0.0.1:9 is unreachable"),
    ],
)
def test_search_bad_input(tmp_path: Path, args: list[str], expected: str) -> None:
    result = run_cli(["search.run", *(a.format(tmp=tmp_path) for a in args)], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed validation must write nothing"


def test_export_without_a_search_says_so(tmp_path: Path) -> None:
    result = run_cli(["search.export"], cwd=tmp_path)
    assert result.returncode == 2
    assert "run 'python -m search.run' first" in result.stderr



def test_unknown_attention_type_in_a_space_file(tmp_path: Path) -> None:
    source = (REPO / "spaces" / "fashion_attention.yaml").read_text()
    space_file = tmp_path / "mine.yaml"
    space_file.write_text(source.replace("types: [none, se, eca,", "types: [none, sparkle, se, eca,"))
    result = run_cli(["search.run", f"space={space_file}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: space 'mine': stage 0: unknown attention type 'sparkle'; valid types: ")
    assert {"se", "eca", "cbam", "coord", "gc", "nl", "none"} <= set(lines[0].split("valid types: ")[1].split(", "))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]
