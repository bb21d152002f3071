"""Write a latency bundle: everything the target device needs to measure a space's latency table, in one folder.

    BUNDLE/time_bundle.py   the timing script (``devices.target``): Python, numpy and onnxruntime only
    BUNDLE/manifest.json    what each model is (key, kind, input shape, the architecture of whole models)
    BUNDLE/models.zip       the ONNX files (``trials.runtime.export_onnx``, opset ``ONNX_OPSET``, batch dynamic)

The models: the plain backbone once per classifier head the space offers, each distinct attention module the space
can produce (``devices.variants.space_modules``) as a one-module graph at the shape it sees, and whole
architectures drawn from the space with fixed seeds, ``calibration`` ones to fit the predictor's correction and
``held_out`` ones (another seed, none shared) to state its error. One trip out, one table back.

Size: latency does not depend on the weights' values, except through denormals and through runtimes that skip
zeros (XNNPACK's sparse kernels), so each weight tensor repeats its own first ``_PERIOD`` initial values: the values
keep their initial distribution and the zip's deflate (32 KiB window) stores each repeat in a few bytes.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import random
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from backbones import ArchConfig, build, canonical, make_attention
from devices import target
from devices.variants import Shape, backbone_key, space_modules
from spaces import SearchSpace
from trials.runtime import ONNX_OPSET, export_onnx

_PERIOD = 1024  # values per weight tensor that repeat (4 KiB of float32: eight repeats per deflate window)
SCRIPT = "time_bundle.py"
_ROLES = ("calibration", "held_out")


class _Suggester:
    """A ``SearchSpace.sample`` suggester drawing every categorical uniformly from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_categorical(self, name: str, choices: Sequence) -> object:
        return self.rng.choice(list(choices))


def sample_archs(space: SearchSpace, *, base: ArchConfig, count: int, seed: int,
                 exclude: Sequence[ArchConfig] = ()) -> list[ArchConfig]:
    """Up to ``count`` distinct architectures (by canonical form) of ``space`` on ``base``, drawn uniformly per
    categorical as the search's random sampler would, none of them in ``exclude``; fewer when the space is smaller."""
    suggest, seen, found = _Suggester(seed), {canonical(a) for a in exclude}, []
    for _ in range(100 * count):
        if len(found) == count:
            break
        arch = space.sample(suggest, base=base)
        if (key := canonical(arch)) not in seen:
            seen.add(key)
            found.append(arch)
    return found


@torch.no_grad()
def _compressible(model: nn.Module) -> nn.Module:
    """Each parameter repeats its first ``_PERIOD`` values (module docstring: why the timing does not change)."""
    for p in model.parameters():
        flat = p.detach().reshape(-1)
        if flat.numel() > _PERIOD:
            p.copy_(flat[:_PERIOD].repeat(math.ceil(flat.numel() / _PERIOD))[:flat.numel()].view_as(p))
    return model.eval()


def backbone_entry(base: ArchConfig, *, head: str, image: Shape) -> tuple[dict, Callable[[], nn.Module]]:
    """The manifest entry and model maker of the plain ``base`` with classifier ``head``."""
    arch = dataclasses.replace(base, head=head)
    return ({"name": backbone_key(head), "kind": "backbone", "head": head, "input": list(image)},
            lambda: build(arch))


def arch_entry(arch: ArchConfig, *, name: str, role: str, image: Shape) -> tuple[dict, Callable[[], nn.Module]]:
    """The manifest entry and model maker of the whole architecture ``arch``."""
    return ({"name": name, "kind": "arch", "role": role, "arch": arch.to_dict(), "input": list(image)},
            lambda: build(arch))


def _entries(space: SearchSpace, *, base: ArchConfig, image: Shape, calibration: int, held_out: int,
             seed: int) -> list[tuple[dict, Callable[[], nn.Module]]]:
    """(manifest entry, model maker) for every model of the bundle, in manifest order."""
    out = [backbone_entry(base, head=head, image=image) for head in space.head]
    for key, module in space_modules(space, base=base, image=image).items():
        out.append(({"name": key, "kind": "module", "input": list(module.shape)},
                    lambda m=module: make_attention(m.spec.attn, channels=m.shape[0], **m.spec.knobs)))
    drawn: list[ArchConfig] = []
    for role, count, role_seed in zip(_ROLES, (calibration, held_out), (seed, seed + 1)):
        archs = sample_archs(space, base=base, count=count, seed=role_seed, exclude=drawn)
        drawn += archs
        out += [arch_entry(arch, name=f"arch/{role}/{i}", role=role, image=image) for i, arch in enumerate(archs)]
    return out


def write_bundle(space: SearchSpace, *, base: ArchConfig, image: Shape, out: str | Path,
                 calibration: int = 30, held_out: int = 30, seed: int = 0,
                 log: Callable[[str], None] = lambda line: None) -> Path:
    """Write the bundle of ``space`` (a ``spaces.SearchSpace``) on ``base`` (its plain architecture, the search's
    backbone and sizes) for images of shape ``image`` (C, H, W) into the folder ``out`` (created; must not exist,
    or be empty). Returns the folder. Models are built with torch seed 0; architectures are drawn with ``seed``
    (calibration) and ``seed + 1`` (held out)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"bundle folder {out} exists and is not empty; name a new one")
    entries = _entries(space, base=base, image=image, calibration=calibration, held_out=held_out, seed=seed)
    return write_models(entries, out=out, space=space.name, base=base, image=image, log=log)


def write_models(entries: Sequence[tuple[dict, Callable[[], nn.Module]]], *, out: Path, space: str, base: ArchConfig,
                 image: Shape, log: Callable[[str], None] = lambda line: None) -> Path:
    """Export each (manifest entry, model maker) of ``entries`` into ``out/models.zip`` and write the manifest and
    the timing script beside it; the reference is the plain ``base``, which ``entries`` must hold. Returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(out / "models.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i, (entry, make) in enumerate(entries):
            entry["file"] = f"{i:04d}.onnx"
            torch.manual_seed(0)
            model = _compressible(make())
            path = export_onnx(model, example=torch.randn(1, *entry["input"]), path=Path(tmp) / entry["file"])
            zf.write(path, entry["file"])
            path.unlink()
            if (i + 1) % 20 == 0 or i + 1 == len(entries):
                log(f"  {i + 1}/{len(entries)} models exported")
    models = [entry for entry, _ in entries]
    manifest = {"format": target.BUNDLE_FORMAT, "space": space, "base": base.to_dict(), "image": list(image),
                "reference": backbone_key(base.head), "opset": ONNX_OPSET, "models": models}
    manifest["bundle_id"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]
    manifest["created"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.copyfile(target.__file__, out / SCRIPT)
    return out


def bundle_size_mb(folder: str | Path) -> float:
    """Total size of the files in ``folder``, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
