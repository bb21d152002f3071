"""The latency bundle, the target script, the table and the predictor, on a tiny space (2 stages x {none, se})."""
from __future__ import annotations

import ast
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backbones import StageConfig
from devices import (Unpriceable, backbone_key, fit, held_out_error, load_predictor, load_table, modules_of,
                     sample_archs, write_bundle)
from devices.__main__ import main
from devices.bundle import SCRIPT
from devices.table import TableError
from spaces import load_space

IMAGE = (1, 28, 28)
CLI = ["--image", "1x28x28", "--classes", "10"]


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    raw = yaml.safe_load(Path("spaces/fashion_attention.yaml").read_text())
    raw.update(name="tiny_latency", head=["avg"], stages={2: {}, 3: {}},
               defaults={"types": ["none", "se"], "reduction": [8], "position": ["after_block"]})
    path = tmp_path_factory.mktemp("space") / "tiny_latency.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def space(space_file):
    return load_space(str(space_file))


@pytest.fixture(scope="module")
def base(space):
    budget = space.budgets["cpu"]
    return space.base_arch(backbone=budget.backbone, in_chans=1, num_classes=10,
                           backbone_kwargs=budget.backbone_kwargs)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, space, base) -> Path:
    return write_bundle(space, base=base, image=IMAGE, out=tmp_path_factory.mktemp("b") / "bundle", calibration=3,
                        held_out=1)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory, bundle) -> Path:
    """The bundle copied elsewhere and timed there by its own script, as on a target (no attnas on the path)."""
    there = tmp_path_factory.mktemp("target")
    shutil.copytree(bundle, there / "bundle")
    out = subprocess.run([sys.executable, str(there / "bundle" / SCRIPT), "--runs", "3", "--warmup", "1",
                          "--out", str(there / "table.json")], cwd=there, capture_output=True, text=True,
                         timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return there / "table.json"


def test_bundle_holds_backbone_modules_and_archs(bundle, space, base):
    manifest = json.loads((bundle / "manifest.json").read_text())
    kinds = [m["kind"] for m in manifest["models"]]
    own = {"se/r8@128x7x7", "se/r8@256x4x4"}  # the space's: se/r8 at stage 2's and stage 3's shape
    # and the controls' modules (every search trains its controls, so the table must price them)
    controls = {m.key for arch in space.control_archs(base=base).values() for m in modules_of(arch, image=IMAGE)}
    assert controls - own and kinds.count("backbone") == 1
    assert {m["name"] for m in manifest["models"] if m["kind"] == "module"} == own | controls
    assert [m["role"] for m in manifest["models"] if m["kind"] == "arch"] == ["calibration"] * 3 + ["held_out"]
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "models.zip", SCRIPT]


def test_target_script_needs_only_numpy_and_onnxruntime():
    from devices import target

    allowed = {"__future__", "argparse", "datetime", "json", "os", "platform", "random", "sys", "time", "zipfile",
               "pathlib", "numpy", "onnxruntime"}
    found = set()
    for node in ast.walk(ast.parse(Path(target.__file__).read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0])
    assert found <= allowed, found - allowed


def test_table_round_trip(table_path, bundle, space, base):
    table = load_table(table_path, space=space.name, base=base)
    raw = json.loads(table_path.read_text())
    assert table.image == IMAGE and table.batch == 1 and table.threads == 1
    assert set(table.costs) == {m["name"] for m in raw["rows"] if m["kind"] != "arch"}
    row = next(r for r in raw["rows"] if r["name"] == "se/r8@256x4x4")
    assert table.costs["se/r8@256x4x4"] == pytest.approx(row["rel"] * raw["reference_ms"])
    assert len(table.by_role("calibration")) == 3 and len(table.by_role("held_out")) == 1
    assert raw["bundle_id"] == json.loads((bundle / "manifest.json").read_text())["bundle_id"]


def test_predictor_prices_archs_of_its_space(table_path, space, base):
    predictor = load_predictor(table_path, space=space, base=base)
    se = StageConfig(attn="se", reduction=8)
    arch = dataclasses.replace(base, stages=(StageConfig(), StageConfig(), se, se))
    price = predictor.price(arch)
    assert [key for key, _ in price.modules_ms] == ["se/r8@128x7x7", "se/r8@256x4x4"]
    assert price.backbone_ms == predictor.table.costs[backbone_key("avg")]
    assert predictor.predict(arch) > 0
    error = held_out_error(predictor)
    assert error.n == 1 and 0 <= error.within_10 <= 1


@pytest.mark.parametrize("change, needle", [
    (dict(stages=(StageConfig(attn="cbam", reduction=8, kernel_size=3),) + (StageConfig(),) * 3),
     "no row for module 'cbam/r8/k3@32x28x28' at stage 0"),
    (dict(head="attn_pool"), "no row 'backbone/attn_pool'"),
    (dict(backbone_kwargs={"channels": [16, 32, 64, 128], "stem_width": 16}), "measured on resnet10t"),
])
def test_predictor_refuses_what_the_table_cannot_price_in_one_line(table_path, space, base, change, needle):
    predictor = fit(load_table(table_path))
    with pytest.raises(Unpriceable) as err:
        predictor.predict(dataclasses.replace(base, **change))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_modules_follow_position_and_blocks(base):
    """resnet10t has one block per stage: every / last place one module, at the stage's output shape."""
    arch = dataclasses.replace(base, stages=(StageConfig(attn="eca", kernel_size=3, position="in_block"),
                                             StageConfig(), StageConfig(attn="gc", reduction=4, position="stage_end"),
                                             StageConfig()))
    assert [m.key for m in modules_of(arch, image=IMAGE)] == ["eca/k3@32x28x28", "gc/r4@128x7x7"]


def test_sampled_archs_are_distinct_and_held_out_differ(space, base):
    first = sample_archs(space, base=base, count=3, seed=0)
    rest = sample_archs(space, base=base, count=10, seed=1, exclude=first)
    assert len(first) == 3 and len(rest) == 1  # the tiny space has 4 architectures in all


def _edit(table_path: Path, tmp_path: Path, edit) -> Path:
    raw = json.loads(table_path.read_text())
    edit(raw)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    return path


BAD_TABLES = {
    "missing file": (lambda raw: None, "not found"),
    "another space": (lambda raw: raw.update(space="cifar_attention"), "measured for space 'cifar_attention'"),
    "another backbone": (lambda raw: raw["base"].update(backbone="resnet18"), "measured on resnet18"),
    "row without median": (lambda raw: raw["rows"][1].pop("median_ms"), "row 1"),
    "row with text for a number": (lambda raw: raw["rows"][0].update(rel="fast"), "rel='fast'"),
    "another format": (lambda raw: raw.update(format="csv"), "format 'csv'"),
    "image not C, H, W": (lambda raw: raw.update(image=[28, 28]), "image=[28, 28] must be [C, H, W]"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_tables_end_in_one_line_and_exit_2(case, table_path, space_file, tmp_path, capsys):
    edit, needle = BAD_TABLES[case]
    path = tmp_path / "absent.json" if case == "missing file" else _edit(table_path, tmp_path, edit)
    assert main(["check", str(path), "--space", str(space_file), *CLI]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_check_states_the_held_out_error(table_path, space_file, capsys):
    assert main(["check", str(table_path), "--space", str(space_file), *CLI]) == 0
    assert "held-out error: 1 architectures: MAPE" in capsys.readouterr().out


def test_not_json_and_unknown_space_exit_2(tmp_path, table_path, capsys):
    bad = tmp_path / "t.json"
    bad.write_text("{not json")
    assert main(["check", str(bad), "--space", "fashion_attention", *CLI]) == 2
    assert main(["check", str(table_path), "--space", "no_such_space", *CLI]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "not readable JSON" in err[0] and "unknown space 'no_such_space'" in err[1]


def test_a_table_missing_a_module_of_the_space_is_refused_when_loaded(table_path, space, base, tmp_path):
    """A space edited after its bundle was written: refused before any search starts, naming one missing row."""
    wider = dataclasses.replace(space, stages=space.stages + (dataclasses.replace(space.stages[0], index=1),))
    with pytest.raises(TableError) as err:
        load_predictor(table_path, space=wider, base=base)
    assert re.search(r"lacks 3 of the 10 backbone/module rows space 'tiny_latency' needs, e.g. 'se/r8@64x14x14'", str(err.value))  # its own and the controls' at stage 1
