"""Bad input to ``search.export`` that needs a real MLflow store: no finished search, a search name that does not
exist, an output folder that already exists. Each ends with one ``error:`` line naming the value, exit code 2, and
nothing written (the folder's files and the store's registered models unchanged). The store is a real SQLite
MLflow store holding hand-made parent runs (no training: the errors come before any artifact is read)."""
from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

import search.export
from search.outcomes import ROLE_TAG, SEARCH_ROLE, SEARCH_TAG


def _store(folder: Path, *, finished: bool) -> None:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment("attnas", artifact_location=str(folder / "mlartifacts"))
    run = client.create_run(experiment, run_name="alpha", tags={ROLE_TAG: SEARCH_ROLE, SEARCH_TAG: "alpha"})
    if finished:
        client.set_terminated(run.info.run_id, "FINISHED")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


CASES = {
    "no finished search": (False, (), (), ("no finished search in the tracking store", "finished searches: none")),
    "unknown search name": (True, ("search=beta",), (), ("no finished search named 'beta'",
                                                         "finished searches: alpha")),
    "output folder exists": (True, (), ("exported/attnas_alpha",), ("exported/attnas_alpha already exists",
                                                                    "overwrite=true")),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_export_refuses_and_writes_nothing(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    finished, args, folders, expect = CASES[case]
    _store(tmp_path, finished=finished)
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        # an absolute store URI: MLflow caches a store per URI string, and every case's relative one is the same
        search.export.main([*args, f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"])
    lines = capsys.readouterr().err.splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for part in expect:
        assert part in lines[0], (part, lines[0])
    assert _snapshot(tmp_path) == before, "bad input must write nothing"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.search_registered_models() == []
