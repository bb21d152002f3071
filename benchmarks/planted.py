"""Does the search find a gain that is there, and only then? A planted-signal benchmark through the user's own-data path.

**The planted dataset** (``relation``): 32x32 grayscale PNGs of weak noise with two 5x5 binary patterns, one in
the top-left 10x10 corner and one in the bottom-right 10x10 corner (about 20 px apart; positions jittered). Label
``same`` when the two patterns are identical, ``different`` when the second is an independent pattern (at least 6
of 25 pixels differ). Deciding the label means comparing the contents of two distant regions. A non-local block
(``nl``: every position attends to every other by dot product, Wang et al. 2018, https://arxiv.org/abs/1711.07971)
or a global-context block (``gc``: a context vector pooled over all positions added back at each,
Cao et al. 2019, https://arxiv.org/abs/1904.11492) at an early stage relates them directly. The plain backbone
must carry both patterns' exact bits through its convolutions until a receptive field spans both, and its global
average pool sums features over positions, which keeps *which* patterns occur but not whether two are equal; at the
CPU budget it stays near chance (measured by ``--why``). Measured by the searches: the set does not single out
nl and gc. CBAM (its channel gate pools globally, its spatial gate weighs positions) and coordinate attention (pooling
along rows and columns) also learn it. The search's CBAM r16/k7 control gained +32 points, while SE r16 (global
average pooling only) gained nothing. So recall is printed both ways: any placement confirmed better, and a pick
holding nl or gc. **The twin** (``twin``): the same images with labels drawn
independently of the content, so nothing can be learned and any "better" verdict on it is a false positive.
Fashion-MNIST (``fashion``) is the third set: real data where no large attention effect is known at this budget.

``python -m benchmarks.planted`` writes both folders, then runs the real search as a user would (``python -m
search.run space=your_data data.root=DIR``, its default controls, budget and confirmation; Fashion-MNIST with
``space=fashion_attention``) for several search seeds, each in its own folder, and reads each search's confirmed
table from its MLflow store. It prints **recall** (relation searches whose confirmed pick holds nl or gc and is
confirmed ``better``) and **false positives** (twin and Fashion-MNIST searches that confirm any placement
``better``). ``--why`` first trains plain, nl and gc at every stage directly (``trials.run_trial``, 3 seeds, the
your_data CPU budget) to show the effect the search should find. ``--quick``: a tiny smoke run (figures
meaningless). Searches resume: a rerun reuses every search that finished.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIDE = 32  # px
PATCH = 5  # px: the binary patterns
CORNER = 10  # px: each pattern lies inside a CORNER x CORNER corner region
MIN_DIFFERENT_BITS = 6  # a "different" pattern differs from the first in at least this many of PATCH**2 pixels
PLANTED_TYPES = ("nl", "gc")  # attention that relates distant regions early: what the relation set rewards
DATASETS = ("relation", "twin", "fashion")


def _pattern(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2, size=(PATCH, PATCH), dtype=np.uint8)


def planted_images(*, images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N x SIDE x SIDE, labels N: 1 = the two patterns are the same, 0 = different), balanced."""
    rng = np.random.default_rng(seed)
    out = np.empty((images, SIDE, SIDE), dtype=np.uint8)
    labels = np.arange(images) % 2
    rng.shuffle(labels)
    for i, same in enumerate(labels):
        first = _pattern(rng)
        second = first.copy()
        if not same:
            while (second != first).sum() < MIN_DIFFERENT_BITS:
                second = _pattern(rng)
        image = rng.integers(0, 60, size=(SIDE, SIDE)).astype(np.uint8)  # weak noise
        for pattern, (y0, x0) in ((first, (0, 0)), (second, (SIDE - CORNER, SIDE - CORNER))):
            y = y0 + rng.integers(0, CORNER - PATCH + 1)
            x = x0 + rng.integers(0, CORNER - PATCH + 1)
            image[y:y + PATCH, x:x + PATCH] = np.where(pattern == 1, 255, 0)
        out[i] = image
    return out, labels


def write_folder(root: Path, *, kind: str, images: int, seed: int = 0) -> Path:
    """Write the ``relation`` set or its ``twin`` (same images, labels independent of them) as ROOT/CLASS/NNNN.png;
    returns root. Does nothing when root already holds the images."""
    from PIL import Image

    if (root / "done.json").exists():
        return root
    pixels, labels = planted_images(images=images, seed=seed)
    if kind == "twin":
        labels = np.random.default_rng(seed + 1).permutation(labels)  # same class balance, no relation to content
    for name in ("different", "same"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(pixels, labels)):
        Image.fromarray(image).save(root / ("same" if label else "different") / f"{i:05d}.png")
    (root / "done.json").write_text(json.dumps({"kind": kind, "images": images, "seed": seed}))
    return root


def search_command(*, dataset: str, root: Path, seed: int, quick: bool) -> list[str]:
    """The search a user would run on this data (its defaults), as ``python -m`` arguments."""
    args = (["search.run", "space=fashion_attention"] if dataset == "fashion" else
            ["search.run", "space=your_data", f"data.root={root}"])
    args += [f"seed={seed}", f"name={dataset}-seed{seed}"]
    if quick:
        args += ["budget.trials=2", "budget.epochs=1", "budget.train_size=256", "budget.val_size=128",
                 "confirm.seeds=2", "confirm.max_seeds=2", "data.test_size=200", "train.precision=fp32",
                 "latency.runs=5", "latency.batch=0"]
    return args


def run_search(*, dataset: str, root: Path, seed: int, folder: Path, quick: bool) -> dict:
    """Run (or reuse) one search in ``folder``; returns its verdict, pick and confirmed rows."""
    done = folder / "outcome.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    args = search_command(dataset=dataset, root=root, seed=seed, quick=quick)
    with (folder / "search.log").open("w") as log:
        code = subprocess.run([sys.executable, "-m", *args], cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(REPO)}).returncode
    if code != 0:
        raise SystemExit(f"search {args} failed (exit {code}); its log: {folder / 'search.log'}")
    outcome = {"dataset": dataset, "seed": seed, "command": "python -m " + " ".join(args),
               "wall_s": round(time.monotonic() - started, 1), **_confirmed(folder)}
    done.write_text(json.dumps(outcome, indent=1))
    return outcome


def _confirmed(folder: Path) -> dict:
    """The verdict, the confirmed rows and the pick (export's rule: the most accurate ``better`` row) of the one
    search in folder/mlflow.db."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'search'")
    path = client.download_artifacts(parent.info.run_id, "confirmation/confirmed.csv", str(folder))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    better = [r for r in rows if r["verdict"] == "better"]
    pick = max(better, key=lambda r: float(r["test_acc_mean"])) if better else None
    return {"verdict": parent.data.tags.get("attnas.verdict", ""), "pick": pick["arch"] if pick else "plain",
            "pick_better": pick is not None,
            "pick_planted": pick is not None and any(f"{t}/" in pick["arch"] for t in PLANTED_TYPES),
            "rows": [{k: r[k] for k in ("name", "arch", "n_seeds", "test_acc_mean", "diff_vs_plain_mean",
                                        "diff_vs_plain_ci95_low", "diff_vs_plain_ci95_high", "verdict")}
                     for r in rows]}


def why(root: Path, *, seeds: int, quick: bool) -> list[dict]:
    """Train plain, nl r8 and gc r8 at every stage on the relation set directly (the your_data CPU budget):
    test_acc per seed, the effect the search should find."""
    import torch

    from backbones import ArchConfig, build
    from spaces import load_space
    from trials import ProbeConfig, TrainConfig, evaluate, load_dataset, run_trial
    from trials.augment import normalize
    from trials.speed import CANDIDATES, choose_precision

    space = load_space("your_data")
    budget = space.budgets["cpu"]
    data = load_dataset("image_folder", root=str(root), train_size=96 if quick else budget.train_size,
                        val_size=32 if quick else budget.val_size, seed=0, test=True, log=lambda _text: None)
    base = space.base_arch(backbone=budget.backbone, in_chans=data.in_chans, num_classes=data.num_classes,
                           backbone_kwargs=budget.backbone_kwargs)
    torch.set_num_threads(1)
    images = normalize(data.train_x[:budget.batch_size], mean=data.mean, std=data.std)
    choice = choose_precision(build(base.plain()), images=images, labels=data.train_y[:budget.batch_size])
    precision, channels_last = CANDIDATES[choice.label]
    print(f"  why: training arithmetic {choice.describe()}", flush=True)
    archs = {"plain": base.to_dict()}
    for kind in PLANTED_TYPES:
        arch = base.to_dict()
        arch["stages"] = [{"attn": kind, "reduction": 8} for _ in range(len(arch["stages"]))]
        archs[f"{kind}_r8"] = arch
    rows = []
    for name, arch in archs.items():
        for seed in range(1, seeds + 1):
            torch.manual_seed(seed)
            model = build(ArchConfig.from_dict(arch))
            epochs: list[float] = []
            train = TrainConfig(epochs=1 if quick else budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                                weight_decay=budget.weight_decay, seed=seed, precision=precision,
                                channels_last=channels_last)
            run_trial(model=model, data=data, train=train, probe=ProbeConfig(runs=1, warmup=0, batch=0),
                      device="cpu", threads=1, report=lambda r, _: epochs.append(r.metrics["val_acc"]))
            test_acc = evaluate(model, data, device=torch.device("cpu"), split="test", precision=precision)
            rows.append({"arch": name, "seed": seed, "test_acc": round(test_acc, 4),
                         "val_acc": [round(v, 3) for v in epochs]})
            print(f"  why: {name} seed {seed}: test_acc {test_acc:.4f}, val_acc by epoch "
                  f"{' '.join(f'{v:.3f}' for v in epochs)}", flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("planted"), help="work folder (default: ./planted)")
    parser.add_argument("--searches", type=int, default=5, help="search seeds per dataset (default 5; 0: --why only)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {', '.join(DATASETS)}")
    parser.add_argument("--images", type=int, default=4000, help="images in the relation and twin folders")
    parser.add_argument("--why", action="store_true", help="first train plain, nl and gc directly (3 seeds)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (figures meaningless)")
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown or args.searches < 0:
        print(f"error: --datasets {','.join(unknown)} / --searches {args.searches}: datasets are "
              f"{', '.join(DATASETS)}, searches >= 0", file=sys.stderr)
        raise SystemExit(2)
    images = 200 if args.quick else args.images
    roots = {kind: write_folder(args.out / "data" / kind, kind=kind, images=images) for kind in ("relation", "twin")}
    print(f"Planted data: {images} images each in {roots['relation']} and {roots['twin']}", flush=True)
    if args.why:
        (args.out / "why.json").write_text(json.dumps(why(roots["relation"], seeds=1 if args.quick else 3,
                                                          quick=args.quick), indent=1))
    outcomes = []
    for seed in range(args.searches):  # seed-major: a stopped run already has every dataset
        for dataset in datasets:
            outcome = run_search(dataset=dataset, root=roots.get(dataset, Path()), seed=seed, quick=args.quick,
                                 folder=args.out / "searches" / f"{dataset}-seed{seed}")
            outcomes.append(outcome)
            print(f"  {dataset} seed {seed} ({outcome['wall_s']:.0f} s): pick {outcome['pick']}; "
                  f"{outcome['verdict']}", flush=True)
    if outcomes:
        (args.out / "outcomes.json").write_text(json.dumps(outcomes, indent=1))
        print(summary(outcomes))


def summary(outcomes: Sequence[dict]) -> str:
    """Recall on the relation set, false positives on the others, as lines."""
    lines = ["", "dataset   searches  confirmed better  pick holds nl/gc and is better"]
    for dataset in DATASETS:
        runs = [o for o in outcomes if o["dataset"] == dataset]
        if runs:
            lines.append(f"{dataset:<9} {len(runs):<9} {sum(o['pick_better'] for o in runs):<17} "
                         f"{sum(o['pick_planted'] for o in runs)}")
    relation = [o for o in outcomes if o["dataset"] == "relation"]
    if relation:
        gains = [float(r["diff_vs_plain_mean"]) for o in relation for r in o["rows"]
                 if r["arch"] == o["pick"] and o["pick_better"]]
        lines.append(f"recall: {sum(o['pick_better'] for o in relation)} of {len(relation)} relation searches confirm "
                     f"a placement better" + (f" (the pick by {min(gains):+.3f} to {max(gains):+.3f})" if gains else "")
                     + f"; {sum(o['pick_planted'] for o in relation)} of them pick nl or gc")
    for dataset in ("twin", "fashion"):
        runs = [o for o in outcomes if o["dataset"] == dataset]
        if runs:
            lines.append(f"false positives on {dataset}: {sum(o['pick_better'] for o in runs)} of {len(runs)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
