"""Bad input, table-driven: each malformed override or space file ends with exactly one ``error:`` line on stderr
that names the bad value (and the valid choices where there is a finite set), exit code 2, and nothing written in
the working folder (no Ray experiment folder ``runs/``, no ``mlflow.db``, no ``mlartifacts/``).

The table runs in-process through ``search.run.main(argv)`` / ``search.export.main(argv)``, the very functions
``python -m search.run`` / ``python -m search.export`` call (Hydra composes the structured config, then the task);
four cases also run as real subprocesses to prove the entry point itself.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

import search.export
import search.run
from backbones import ATTENTION, HEADS, POSITIONS
from search.settings.config import ExportConfig, RunConfig
from trials import DATASETS

REPO = Path(__file__).resolve().parents[2]
WRITTEN = ("runs", "mlflow.db", "mlartifacts", "optuna.db")  # what a search (or export) would leave in the working folder
HAS_FASHION = Path(DATASETS["fashion_mnist"].default_root).is_dir()
needs_fashion = pytest.mark.skipif(not HAS_FASHION, reason="Fashion-MNIST not installed (dataset-fashion-mnist)")


def _closed_port() -> int:
    """A local port nothing listens on: an unreachable tracking server that refuses at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # command-line arguments; {tmp} = tmp_path, {space} = the edited space file, {port}
    expect: tuple[str, ...]  # substrings of the error line: the bad value first, then the valid choices
    edit: tuple[str, str] | None = None  # replace this text of fashion_attention.yaml -> tmp_path/bad.yaml
    entry: str = "run"  # "run" or "export"
    # files to write first, relative to tmp_path: "png" = a valid 8x8 image, "dir" = an empty folder, else the text
    files: tuple[tuple[str, str], ...] = ()
    source: str = "fashion_attention.yaml"  # the shipped space ``edit`` applies to


TYPES = "valid types: " + ", ".join(sorted(ATTENTION))
SEG = "fashion_seg_attention.yaml"
CASES = {
    # A segmentation space (task: segment): its decoder and skip offers, and what its task cannot do.
    "unknown decoder attention type": Case(("space={space}",), ("decoder: unknown decoder attention type 'sxse'",
                                                                "valid: ", "scse"),
                                           edit=("types: [none, se, eca, cbam, scse]", "types: [none, sxse]"),
                                           source=SEG),
    "unknown skip mode": Case(("space={space}",), ("skips: unknown skip 'gated'", "valid: none, gate"),
                              edit=("skips: [none, gate]", "skips: [none, gated]"), source=SEG),
    "oneshot on a segment space": Case(("space=fashion_seg_attention", "strategy=oneshot"),
                                       ("strategy=oneshot", "task 'segment'", "strategy=multi_trial")),
    # Hydra-level: unknown keys and malformed overrides.
    "unknown key": Case(("foo=1",), ("'foo'", "valid settings: space, name, sampler, seed, device, concurrency, "
                                          "budget.*, constraints.*, asha.*, data.*, latency.*, train.*, compile, mlflow.*, "
                                          "faults.*, confirm.*, strategy, oneshot.*, storage, ray.*, study.*")),
    "unknown budget key": Case(("budget.epoch=3",), ("'budget.epoch'", "valid settings under budget: backbone, "
                                                     "backbone_kwargs, epochs, trials, batch_size")),
    "added unknown key": Case(("+colour=red",), ("'colour'", "valid settings: space")),
    "deleted key": Case(("~seed",), ("'~seed'", "only key=value")),
    "unparsable override": Case(("space=[",), ("'space=['", "write key=value")),
    "value for a group": Case(("budget=3",), ("budget=3", "valid settings under budget: backbone")),
    "sweep without --multirun": Case(("seed=1,2",), ("'seed=1,2'", "--multirun")),
    "unknown option": Case(("--colour",), ("'--colour'", "--help")),
    # Values of the wrong type or range.
    "seed not a number": Case(("seed=abc",), ("seed='abc'", "integer >= 0")),
    "latency budget negative": Case(("constraints.max_latency_ms=-1",), ("constraints.max_latency_ms=-1", "number > 0")),
    "params budget text": Case(("constraints.max_params_m=big",), ("constraints.max_params_m='big'", "number > 0")),
    "latency precision": Case(("latency.precision=int8",), ("'int8'", "valid latency precisions: fp32, bf16, fp16")),
    "train precision": Case(("train.precision=fp16",), ("'fp16'", "valid train precisions: auto, fp32, bf16")),
    "ema out of range": Case(("budget.ema=1.5",), ("ema=1.5", "[0, 1)")),
    "compile not a boolean": Case(("compile=maybe",), ("compile='maybe'", "true or false")),
    "fault rate above 1": Case(("faults.rate=2",), ("faults.rate=2", "from 0 to 1")),
    "confirm top_k 0": Case(("confirm.top_k=0",), ("confirm.top_k=0", "an integer >= 1")),
    "confirm seeds word": Case(("confirm.seeds=three",), ("confirm.seeds", "three")),
    "confirm cap below first look": Case(("confirm.seeds=4", "confirm.max_seeds=3"),
                                         ("confirm.max_seeds=3", "below confirm.seeds=4")),
    "confirm controls unknown": Case(("confirm.controls=some",), ("confirm.controls choice", "some", "all, plain")),
    "confirm resolution 0": Case(("confirm.resolution=0",), ("confirm.resolution=0", "number > 0")),
    "bad control": Case(("space={space}",), ("controls", "unknown attention type 'sparkle'", "valid types:"),
                        edit=("\nstages:", "\ncontrols: {glow: {attn: sparkle}}\nstages:")),
    "fault kind": Case(("faults.kind=segfault",), ("'segfault'", "valid failure kinds: raise, oom, nan, mixed")),
    "fault kind read as a number": Case(("faults.kind=nan",), ("faults.kind=nan", "quote it: faults.kind='nan'")),
    "concurrency 0": Case(("concurrency=0",), ("concurrency=0", "integer >= 1")),
    "latency runs negative": Case(("latency.runs=-1",), ("latency.runs=-1", "integer >= 1")),
    "asha grace period text": Case(("asha.grace_period=x",), ("asha.grace_period='x'", "integer >= 1")),
    "asha reduction factor 1": Case(("asha.reduction_factor=1",), ("asha.reduction_factor=1", "number > 1")),
    "negative epochs": Case(("budget.epochs=-1",), ("epochs=-1", "positive integer")),
    "lr not a number": Case(("budget.lr=abc",), ("budget.lr='abc'", "must be a number")),  # range: spaces.Budget
    "lr not positive": Case(("budget.lr=-0.1",), ("lr=-0.1", "positive number")),
    "negative train size": Case(("budget.train_size=-5",), ("train_size=-5", "positive integer")),
    "download not a bool": Case(("data.download=maybe",), ("data.download='maybe'", "true or false")),
    "unknown device": Case(("device=tpu",), ("'tpu'", "valid devices: auto, cpu, cuda")),
    "unknown sampler": Case(("sampler=grid",), ("'grid'", "valid samplers: tpe, nsga2, tpe_mv, random")),
    "name with a slash": Case(("name=bad/name",), ("name='bad/name'", "letters, digits, '.', '_' and '-'")),
    "empty storage": Case(("storage=",), ("storage=''", "folder path")),
    # Ray cluster (ray.address): malformed, nothing listening, no cluster to find for auto.
    "ray address without a port": Case(("ray.address=headnode",), ("ray.address='headnode'", "'auto' or the Ray "
                                                                   "head's HOST:PORT")),
    "ray client address": Case(("ray.address=ray://10.0.0.5:10001",), ("ray://10.0.0.5:10001", "HOST:PORT")),
    "unreachable ray cluster": Case(("ray.address=127.0.0.1:{port}",), ("ray.address=127.0.0.1:{port}",
                                                                         "no Ray cluster answers there",
                                                                         "ray start --head")),
    "study storage not a URL": Case(("study.storage=optuna.db",), ("study.storage='optuna.db'", "Optuna RDB URL")),
    # Tracking store.
    "unreachable tracking URI": Case(("mlflow.tracking_uri=http://127.0.0.1:{port}",),
                                     ("http://127.0.0.1:{port}", "unreachable", "sqlite:///mlflow.db")),
    "unsupported tracking scheme": Case(("mlflow.tracking_uri=ftp://x",),
                                        ("ftp://x", "sqlite:///FILE, file:DIR or http://HOST:PORT")),
    # Spaces.
    "unknown space": Case(("space=nope",), ("'nope'", "available spaces: cifar_attention, fashion_attention, ",
                                            "mobile_attention")),
    "unknown attention type": Case(("space={space}",), ("'sparkle'", TYPES),
                                   edit=("types: [none, se, eca,", "types: [none, sparkle, se, eca,")),
    "ratio 0": Case(("space={space}",), ("reduction=0", ">= 1"),
                    edit=("reduction: [4, 8, 16, 32]", "reduction: [0, 4]")),
    "unknown space key": Case(("space={space}",), ("'colour'", "valid keys: budgets, controls, dataset, decoder, defaults, description"),
                              edit=("small_input: true", "colour: blue\nsmall_input: true")),
    "unknown stage key": Case(("space={space}",), ("'colour'", "valid keys: blocks, kernel_size, position"),
                              edit=("  0: {}", "  0: {colour: red}")),
    "even kernel": Case(("space={space}",), ("kernel_size=4", "positive odd integer"),
                        edit=("kernel_size: [3, 5, 7]", "kernel_size: [3, 4]")),
    "stage out of range": Case(("space={space}",), ("stage 9", "valid stages: 0..3"),
                               edit=("  3: {}", "  3: {}\n  9: {}")),
    "unknown position": Case(("space={space}",), ("'sideways'", "valid: " + ", ".join(POSITIONS)),
                             edit=("position: [after_block, in_block, stage_end]", "position: [sideways]")),
    "unknown head": Case(("space={space}",), ("'maxish'", "valid: " + ", ".join(HEADS)),
                         edit=("head: [avg, attn_pool]", "head: [avg, maxish]")),
    "unknown dataset": Case(("space={space}",), ("'mnist3d'", "valid datasets: " + ", ".join(DATASETS)),
                            edit=("dataset: fashion_mnist", "dataset: mnist3d")),
    # Needs the data (the check runs on the real backbone at the dataset's channel count).
    "ratio larger than channels": pytest.param(
        Case(("space={space}",), ("reduction ratio 64", "32 channels", "valid ratios here: 1..32"),
             edit=("reduction: [4, 8, 16, 32]", "reduction: [4, 64]")), marks=needs_fashion),
    "unknown backbone": pytest.param(Case(("budget.backbone=not_a_model",), ("'not_a_model'", "tested: resnet10t")),
                                     marks=needs_fashion),
    "train size beyond the dataset": pytest.param(Case(("budget.train_size=100000",), ("train_size=100000", "1..")),
                                                  marks=needs_fashion),
    "test size beyond the test split": pytest.param(
        Case(("data.test_size=20000",), ("test_size=20000", "1..10000", "test split has 10000 images")),
        marks=needs_fashion),
    "test size 0": Case(("data.test_size=0",), ("data.test_size=0", "an integer >= 1")),
    "missing dataset": Case(("data.root={tmp}/nowhere", "data.download=false"),
                            ("{tmp}/nowhere", "apt-get install dataset-fashion-mnist", "data.root=DIR")),
    # The user's own images (space your_data, dataset image_folder); the tensor cache goes to {tmp}/cache.
    "image folder without data.root": Case(("space=your_data", "data.cache={tmp}/cache"),
                                           ("needs data.root=DIR", "one subfolder of images per class")),
    "image folder that does not exist": Case(("space=your_data", "data.root={tmp}/nowhere", "data.cache={tmp}/cache"),
                                             ("data.root={tmp}/nowhere is not a folder",)),
    "image folder empty": Case(("space=your_data", "data.root={tmp}/imgs", "data.cache={tmp}/cache"),
                               ("data.root={tmp}/imgs has no class folders", "{tmp}/imgs/CLASS/img.jpg"),
                               files=(("imgs", "dir"),)),
    "image folder with one class": Case(("space=your_data", "data.root={tmp}/imgs", "data.cache={tmp}/cache"),
                                        ("one class folder ('cats'", "at least 2 classes"),
                                        files=(("imgs/cats/a.png", "png"),)),
    "image folder with an empty class": Case(
        ("space=your_data", "data.root={tmp}/imgs", "data.cache={tmp}/cache"),
        ("class folder {tmp}/imgs/dogs has no images", ".jpg"),
        files=(("imgs/cats/a.png", "png"), ("imgs/dogs/notes.txt", "not an image"))),
    "image folder with a corrupt image": Case(
        ("space=your_data", "data.root={tmp}/imgs", "data.cache={tmp}/cache"),
        ("cannot read image {tmp}/imgs/dogs/b.png", "fix or remove the file"),
        files=(("imgs/cats/a.png", "png"), ("imgs/dogs/b.png", "not an image"))),
    "image size 0": Case(("data.image_size=0",), ("data.image_size=0", "an integer >= 1")),
    "image size negative": Case(("space=your_data", "data.image_size=-32"), ("data.image_size=-32", "an integer >= 1")),
    "image folder smaller than val_size": Case(
        ("space=your_data", "data.root={tmp}/imgs", "data.cache={tmp}/cache", "budget.val_size=50"),
        ("val_size=50 must be in 1..4", "5 images outside the test split", "budget.val_size=N"),
        files=tuple((f"imgs/{c}/{i}.png", "png") for c in ("cats", "dogs") for i in range(3))),
    "unknown latency runtime": Case(("latency.runtime=tflite",), ("'tflite'", "valid latency runtimes: torch, onnxruntime")),
    "latency table on a segment space": Case(("space=fashion_seg_attention", "latency.table={tmp}/t.json"),
                                             ("latency.table=", "task 'segment'", "leave latency.table unset"),
                                             files=(("t.json", "{}"),)),
    "latency table missing": Case(("latency.table={tmp}/none.json",), ("latency.table=", "none.json not found")),
    "latency table not a table": Case(("latency.table={tmp}/t.json",), ("latency.table=", "format None, not"),
                                      files=(("t.json", "{}"),)),
    "latency table malformed row": Case(("latency.table={tmp}/t.json",), (
        "latency.table=", "row 0 (backbone/avg): median_ms='fast' must be a finite number >= 0"), files=(("t.json", (
            '{"format": "attnas-latency-table/1", "bundle_id": "x", "space": "fashion_attention", "base": {}, '
            '"image": [1, 28, 28], "reference": "backbone/avg", "reference_ms": 1.0, "batch": 1, "threads": 1, '
            '"device": {}, "date": "", "rows": [{"name": "backbone/avg", "kind": "backbone", "input": [1, 28, 28], '
            '"median_ms": "fast", "iqr_ms": 0.1, "rel": 1.0}]}')),)),
    "onnxruntime latency in bf16": Case(("latency.runtime=onnxruntime", "latency.precision=bf16"),
                                        ("latency.runtime=onnxruntime", "latency.precision=bf16", "latency.runtime=torch")),
    "unknown strategy": Case(("strategy=darts",), ("'darts'", "valid search strategies: multi_trial, oneshot")),
    "oneshot sample of one": Case(("strategy=oneshot", "oneshot.sample=1"), ("oneshot.sample=1", "an integer >= 2")),
    # search.export.
    "export: unknown key": Case(("serach=x",), ("'serach'", "valid settings: search, max_latency_ms, out, "
                                                           "module_name, overwrite, register, mlflow.*"), entry="export"),
    "export: latency not a number": Case(("max_latency_ms=abc",), ("max_latency_ms='abc'", "number > 0"),
                                         entry="export"),
    "export: bad module name": Case(("module_name=1st",), ("module_name='1st'", "Python identifier"), entry="export"),
    "export: unreachable tracking URI": Case(("mlflow.tracking_uri=http://127.0.0.1:{port}",),
                                             ("http://127.0.0.1:{port}", "unreachable"), entry="export"),
}


def _fill(case: Case, tmp_path: Path) -> tuple[list[str], list[str]]:
    """The case's arguments and expected substrings with {tmp}, {space} and {port} filled in."""
    values = {"tmp": tmp_path, "space": tmp_path / "bad.yaml", "port": _closed_port()}
    for relative, content in case.files:
        path = tmp_path / relative
        if content == "dir":
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "png":
            from PIL import Image

            Image.new("L", (8, 8), color=len(relative) * 7 % 256).save(path)
        else:
            path.write_text(content)
    if case.edit is not None:
        source = (REPO / "spaces" / case.source).read_text()
        old, new = case.edit
        assert old in source, f"the space edit no longer applies: {old!r}"
        values["space"].write_text(source.replace(old, new))
    return [a.format(**values) for a in case.args], [e.format(**values) for e in case.expect]


def _assert_rejected(code: object, stderr: str, expect: list[str], folder: Path) -> None:
    lines = stderr.splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0] != "error: ", stderr
    for part in expect:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert not [name for name in WRITTEN if (folder / name).exists()], "bad input must write nothing"


def _no_search(plan: object) -> None:
    raise AssertionError("the input passed validation: a search would start")


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_in_process(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    args, expect = _fill(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(search.run, "execute", _no_search)  # a case that slipped through fails instead of searching
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        {"run": search.run.main, "export": search.export.main}[case.entry](args)
    _assert_rejected(exit_info.value.code, capsys.readouterr().err, expect, tmp_path)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 24


def _leaves(schema: type, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field, typing.Any]]:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            yield from _leaves(kind, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, kind


@pytest.mark.parametrize(("schema", "checked_elsewhere"), [
    (RunConfig, {"budget"}),  # the space's Budget.with_overrides checks the ranges of budget.*
    (ExportConfig, set()),
])
def test_every_setting_has_a_value_check(schema: type, checked_elsewhere: set[str]) -> None:
    """Each setting is a bool, an enum with a noun for its errors, or has a range/pattern rule."""
    unchecked = []
    for key, f, kind in _leaves(schema):
        if key.split(".")[0] in checked_elsewhere or kind is bool:
            continue
        if typing.get_origin(kind) is typing.Union:  # Optional[X]: null means a default, X is what is checked
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            assert "noun" in f.metadata, key
        elif "rule" not in f.metadata:
            unchecked.append(key)
    assert unchecked == []


# The whole table runs in-process above; through the real command, one case from the settings and one from the data
# (each start of the command costs seconds of imports in CI).
@pytest.mark.parametrize("name", ["unknown sampler", "image folder with a corrupt image"])
def test_bad_input_through_the_real_command(name: str, tmp_path: Path) -> None:
    args, expect = _fill(CASES[name], tmp_path)
    result = subprocess.run([sys.executable, "-m", "search.run", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    _assert_rejected(result.returncode, result.stderr, expect, tmp_path)
    assert "Traceback" not in result.stdout + result.stderr
