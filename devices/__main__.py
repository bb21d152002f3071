"""``python -m devices``: write a latency bundle for a target device, then check and use the table it brings back.

    python -m devices bundle fashion_attention --out latency_bundle      # here: ONNX files + time_bundle.py
    python time_bundle.py --threads 1 --out latency_table.json          # there: needs numpy and onnxruntime
    python -m devices check latency_table.json --space fashion_attention # here: the predictor's stated error
    python -m devices predict latency_table.json --space fashion_attention arch.json   # one architecture, ms

The base architecture is the space's budget (``--budget``, default cpu) on the images of the space's dataset
(``--image`` / ``--classes`` give them without loading it). Bad input (unknown space, missing or malformed table, a
table of another space or backbone, an architecture the table cannot price) ends with one ``error:`` line, exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from backbones import ArchConfig
from devices.bundle import SCRIPT, bundle_size_mb, write_bundle
from devices.predictor import held_out_error, load_predictor
from spaces import SearchSpace, load_space
from trials import DatasetMissingError, load_dataset

EXIT_BAD_INPUT = 2  # as search.settings.errors (which this package sits below)


def _shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--image {text!r} must be CxHxW, e.g. 1x28x28") from None
    return c, h, w


def _base(args: argparse.Namespace) -> tuple[SearchSpace, ArchConfig, tuple[int, int, int]]:
    """The space, its plain architecture on the budget's backbone, and the image shape (C, H, W)."""
    space = load_space(args.space)
    if args.budget not in space.budgets:
        raise ValueError(f"unknown budget {args.budget!r}; valid: {', '.join(space.budgets)}")
    budget = space.budgets[args.budget]
    image, classes = args.image, args.classes
    if image is None or classes is None:
        data = load_dataset(space.dataset, train_size=1, val_size=1)
        image, classes = image or data.image_shape, classes or data.num_classes
    base = space.base_arch(backbone=budget.backbone, in_chans=image[0], num_classes=classes,
                           backbone_kwargs=budget.backbone_kwargs)
    return space, base, image


def _bundle(args: argparse.Namespace) -> None:
    space, base, image = _base(args)
    out = write_bundle(space, base=base, image=image, out=args.out, calibration=args.calibration,
                       held_out=args.held_out, seed=args.seed, log=print)
    print(f"wrote {out} ({bundle_size_mb(out):.1f} MB). Copy the folder to the target, run there "
          f"`python {SCRIPT} --threads 1` (needs numpy and onnxruntime) and bring back latency_table.json")


def _check(args: argparse.Namespace) -> None:
    space, base, _ = _base(args)
    predictor = load_predictor(args.table, space=space, base=base)
    c = predictor.correction
    print(f"table: {predictor.table.describe()}")
    print(f"correction (fit on {len(predictor.table.by_role('calibration'))} calibration architectures): "
          f"{c.intercept_ms:+.3f} ms + {c.scale:.3f} x (backbone + modules) {c.per_module_ms:+.4f} ms per module")
    print(f"held-out error: {held_out_error(predictor)}")


def _predict(args: argparse.Namespace) -> None:
    space, base, _ = _base(args)
    predictor = load_predictor(args.table, space=space, base=base)
    try:
        arch = ArchConfig.from_dict(json.loads(Path(args.arch).read_text()))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"architecture {args.arch}: {' '.join(str(err).split())}") from None
    price = predictor.price(arch)
    print(f"{arch}: {price.predicted_ms:.3f} ms predicted (backbone {price.backbone_ms:.3f} ms + "
          f"{len(price.modules_ms)} module(s) {price.raw_ms - price.backbone_ms:.3f} ms, corrected)")


COMMANDS = {"bundle": _bundle, "check": _check, "predict": _predict}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devices", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("bundle", "write the bundle to time on the target"),
                            ("check", "fit the predictor on a table and state its held-out error"),
                            ("predict", "predict one architecture's latency (arch.json) from a table")):
        s = sub.add_parser(name, help=help_text)
        if name == "bundle":
            s.add_argument("space", help="a space name (spaces/NAME.yaml) or a YAML path")
            s.add_argument("--out", required=True, help="new folder for the bundle")
            s.add_argument("--calibration", type=int, default=30, help="whole architectures to fit the correction")
            s.add_argument("--held-out", type=int, default=30, help="whole architectures to state the error on")
            s.add_argument("--seed", type=int, default=0, help="draws calibration (seed) and held-out (seed + 1)")
        else:
            s.add_argument("table", help="latency_table.json from the target")
            s.add_argument("--space", required=True, help="the space the table must be for")
            if name == "predict":
                s.add_argument("arch", help="an architecture's JSON file (e.g. an export's arch.json)")
        s.add_argument("--budget", default="cpu", help="the space's budget whose backbone is priced (default cpu)")
        s.add_argument("--image", type=_shape, default=None, help="CxHxW (default: the space's dataset's)")
        s.add_argument("--classes", type=int, default=None, help="classes (default: the space's dataset's)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (ValueError, DatasetMissingError, OSError) as exc:  # TableError, Unpriceable, SpaceError: ValueErrors
        print(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
