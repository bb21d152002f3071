"""Bad input through the real CLI: one line on stderr naming the bad value, exit code 2, nothing written.

The table of bad inputs is tests/search/test_bad_input.py; here are the cases it does not cover (CIFAR's
torchvision download failing offline, export before any search).
"""

from __future__ import annotations

import os
import re
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
        (["space=cifar_attention", "data.root={tmp}/cifar", "data.download=false"], "dataset 'cifar10' not found"),
        (["space=cifar_attention", "data.root={tmp}/cifar"], "dataset 'cifar10' not found"),
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


def test_hydra_flags_still_work(tmp_path: Path) -> None:
    """``--cfg job`` prints the composed config (overrides applied) and ``--help`` the defaults; nothing written."""
    result = run_cli(["search.run", "--cfg", "job", "sampler=nsga2", "budget.trials=4"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sampler: nsga2" in result.stdout and "trials: 4" in result.stdout
    result = run_cli(["search.export", "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "module_name: null" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_known_flags_are_hydras(tmp_path: Path) -> None:
    """search.settings.cli.HYDRA_FLAGS (an unknown one is one error line) lists exactly the flags ``--hydra-help`` names."""
    from search.settings.cli import HYDRA_FLAGS

    result = run_cli(["search.run", "--hydra-help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = [flag for line in result.stdout.splitlines() if re.match(r"-[\w-]+(,-[\w-]+)* : ", line)
              for flag in line.split(" : ")[0].split(",")]
    assert sorted(listed) == sorted(HYDRA_FLAGS)
