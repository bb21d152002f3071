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
CPU budget it stays near chance (measured by ``--why``). Measured by ``--why``: the set does not single out nl
and gc. CBAM learns it too (best of all), while SE, ECA, coordinate attention and the attention-pool head do not.
So recall is printed three ways: any placement confirmed better; a pick holding nl or gc; a pick holding a kind
that ``--why`` measured to learn it alone (mean test_acc at least ``LEARNS_MARGIN`` above plain's). A last line
leaves the controls out (the default CBAM r16/k7 control is such a kind): the searched architectures alone.
**The twin** (``twin``): the same images with labels drawn
independently of the content, so nothing can be learned and any "better" verdict on it is a false positive.
Fashion-MNIST (``fashion``) is the third set: real data where no large attention effect is known at this budget.

``python -m benchmarks.planted`` writes both folders, then runs the real search as a user would (``python -m
search.run space=your_data data.root=DIR``, its default controls, budget and confirmation; Fashion-MNIST with
``space=fashion_attention``) for several search seeds, each in its own folder, and reads each search's confirmed
table from its MLflow store. It prints **recall** (relation searches whose confirmed pick holds nl or gc and is
confirmed ``better``) and **false positives** (twin and Fashion-MNIST searches that confirm any placement
``better``). ``--why`` first trains the plain backbone and each attention type of the space alone at every stage,
and its attention-pool head, directly (``trials.run_trial``, 3 seeds, the your_data CPU budget; resumable): the
effect the search should find, and which kinds learn the relation (mean test_acc at least 10 points above plain's),
a second, measured recall: picks holding such a kind. ``--quick``: a tiny smoke run (figures
meaningless). Searches resume: a rerun reuses every search that finished. ``--report`` runs nothing and prints the
summary and a markdown table of the searches finished so far.
"""

from __future__ import annotations

import argparse
import csv
import functools
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
LEARNS_MARGIN = 0.10  # a kind "learns the relation" when its mean test_acc beats plain's by this much (10 points)
RELATION_SPACE = "your_data"  # the space the relation searches run; --why trains each of its attention types
QUICK_IMAGES = 200  # --quick: images per folder (the fixed 20% test split, half of all to train, a quarter to validate)
SPACES = {"fashion": "fashion_attention"}  # the space each dataset's search runs (the others: RELATION_SPACE)


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
    space = SPACES.get(dataset, RELATION_SPACE)
    args = ["search.run", f"space={space}"] + ([] if dataset in SPACES else [f"data.root={root}"])
    args += [f"seed={seed}", f"name={dataset}-seed{seed}"]
    if quick:
        args += ["budget.trials=2", "budget.epochs=1", f"budget.train_size={QUICK_IMAGES // 2}",
                 f"budget.val_size={QUICK_IMAGES // 4}", "confirm.seeds=2", "confirm.max_seeds=2",
                 "train.precision=fp32", "latency.runs=5", "latency.batch=0"]
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
            "rows": [{k: r[k] for k in ("name", "arch", "n_seeds", "test_acc_mean", "diff_vs_plain_mean",
                                        "diff_vs_plain_ci95_low", "diff_vs_plain_ci95_high", "verdict")}
                     for r in rows]}


def why_archs(base: dict, *, types: Sequence[str], heads: Sequence[str]) -> dict[str, dict]:
    """The architectures ``--why`` trains, by name: ``plain``; each attention type alone after every block of every
    stage (reduction 8 where the type takes one, its default kernel), named ``TYPE_r8`` or ``TYPE``; and each
    non-default classifier head on the plain stages, named ``HEAD_head``."""
    from backbones import ATTENTION, DEFAULT_HEAD, NONE

    archs = {"plain": base}
    for kind in types:
        if kind == NONE:
            continue
        knobs = {"reduction": 8} if "reduction" in ATTENTION[kind].knobs else {}
        archs[f"{kind}_r8" if knobs else kind] = {**base, "stages": [{"attn": kind, **knobs} for _ in base["stages"]]}
    for head in heads:
        if head != DEFAULT_HEAD:
            archs[f"{head}_head"] = {**base, "head": head}
    return archs


def why(root: Path, *, seeds: int, quick: bool, record: Path) -> list[dict]:
    """Train the plain backbone, every attention type of the ``your_data`` space alone at every stage and every
    other head (:func:`why_archs`) on the relation set directly (the space's CPU budget, 1 thread): test_acc per
    seed, the effect the search should find and which kinds find it. Rows already in ``record`` (JSON) are kept and
    not trained again; each new row is written there as soon as it is measured."""
    import torch

    from backbones import ArchConfig, build
    from spaces import load_space
    from trials import ProbeConfig, TrainConfig, evaluate, load_dataset, run_trial
    from trials.augment import normalize
    from trials.speed import CANDIDATES, choose_precision

    space = load_space(RELATION_SPACE)
    budget = space.budgets["cpu"]
    data = load_dataset("image_folder", root=str(root), train_size=96 if quick else budget.train_size,
                        val_size=32 if quick else budget.val_size, seed=0, test=True, log=lambda _text: None)
    base = space.base_arch(backbone=budget.backbone, in_chans=data.in_chans, num_classes=data.num_classes,
                           backbone_kwargs=budget.backbone_kwargs)
    rows = json.loads(record.read_text()) if record.exists() else []
    done = {(r["arch"], r["seed"]) for r in rows}
    types = list(dict.fromkeys(kind for stage in space.stages for kind in stage.types))
    todo = [(name, arch, seed) for name, arch in why_archs(base.to_dict(), types=types, heads=space.head).items()
            for seed in range(1, seeds + 1) if (name, seed) not in done]
    if not todo:
        return rows
    torch.set_num_threads(1)
    images = normalize(data.train_x[:budget.batch_size], mean=data.mean, std=data.std)
    choice = choose_precision(build(base.plain()), images=images, labels=data.train_y[:budget.batch_size])
    precision, channels_last = CANDIDATES[choice.label]
    print(f"  why: training arithmetic {choice.describe()}", flush=True)
    for name, arch, seed in todo:
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
                     "val_acc": [round(v, 3) for v in epochs], "precision": choice.label})
        record.write_text(json.dumps(rows, indent=1))
        print(f"  why: {name} seed {seed}: test_acc {test_acc:.4f}, val_acc by epoch "
              f"{' '.join(f'{v:.3f}' for v in epochs)}", flush=True)
    return rows


def learners(rows: Sequence[dict], *, margin: float = LEARNS_MARGIN) -> frozenset[str]:
    """The kinds (attention types, or heads as ``HEAD_head`` minus the suffix) whose mean test_acc in the ``--why``
    rows beats the plain backbone's mean by at least ``margin`` (accuracy): measured, not assumed, planted kinds."""
    by_arch: dict[str, list[float]] = {}
    for row in rows:
        by_arch.setdefault(row["arch"], []).append(float(row["test_acc"]))
    plain = float(np.mean(by_arch["plain"]))
    return frozenset(name.removesuffix("_head").removesuffix("_r8") for name, accs in by_arch.items()
                     if name != "plain" and float(np.mean(accs)) >= plain + margin)


def measured_learners(record: Path) -> frozenset[str] | None:
    """:func:`learners` of the ``--why`` record, or None when ``--why`` has not run."""
    return learners(json.loads(record.read_text())) if record.exists() else None


@functools.cache
def control_names(dataset: str) -> frozenset[str]:
    """The names of the controls the dataset's search confirms besides its searched picks (plain included)."""
    from spaces import PLAIN_CONTROL, load_space

    return frozenset({PLAIN_CONTROL, *load_space(SPACES.get(dataset, RELATION_SPACE)).controls})


def kinds_in(arch: str) -> frozenset[str]:
    """The attention types and non-default head of an architecture's short text (``str(ArchConfig)``), e.g.
    ``cbam/r4/k3@stage_end | - | nl/r8 | - +attn_pool`` -> {cbam, nl, attn_pool}."""
    stages, _, head = arch.partition(" +")
    kinds = {token.strip().split("/")[0].split("@")[0] for token in stages.split("|")}
    return frozenset((kinds - {"-", "plain", ""}) | ({head.strip()} if head.strip() else set()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("planted"), help="work folder (default: ./planted)")
    parser.add_argument("--searches", type=int, default=5, help="search seeds per dataset (default 5; 0: --why only)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {', '.join(DATASETS)}")
    parser.add_argument("--images", type=int, default=4000, help="images in the relation and twin folders")
    parser.add_argument("--why", action="store_true",
                        help="first train plain and each attention type and head alone directly (3 seeds; resumes)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run (figures meaningless)")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: print the summary and table of the searches finished under --out")
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown or args.searches < 0:
        print(f"error: --datasets {','.join(unknown)} / --searches {args.searches}: datasets are "
              f"{', '.join(DATASETS)}, searches >= 0", file=sys.stderr)
        raise SystemExit(2)
    if args.report:
        print(report(args.out))
        return
    images = QUICK_IMAGES if args.quick else args.images
    roots = {kind: write_folder(args.out / "data" / kind, kind=kind, images=images) for kind in ("relation", "twin")}
    print(f"Planted data: {images} images each in {roots['relation']} and {roots['twin']}", flush=True)
    record = args.out / "why.json"
    if args.why:
        why(roots["relation"], seeds=1 if args.quick else 3, quick=args.quick, record=record)
    solvers = measured_learners(record)
    if solvers is not None:
        print(f"Kinds that learn the relation alone (--why: mean test_acc >= plain + {LEARNS_MARGIN:.2f}): "
              f"{', '.join(sorted(solvers)) or 'none'}", flush=True)
    else:
        print(f"No {record}: recall counts picks holding nl or gc only (--why measures which kinds learn it)",
              flush=True)
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
        print(summary(outcomes, solvers=solvers))
        print("\n" + markdown(outcomes))


def report(out: Path) -> str:
    """The summary and table of every search finished under ``out`` (``--report``), in dataset then seed order."""
    outcomes = sorted((json.loads(path.read_text()) for path in (out / "searches").glob("*/outcome.json")),
                      key=lambda o: (DATASETS.index(o["dataset"]), o["seed"]))
    if not outcomes:
        return f"no finished search under {out / 'searches'}"
    return summary(outcomes, solvers=measured_learners(out / "why.json")) + "\n\n" + markdown(outcomes)


def markdown(outcomes: Sequence[dict]) -> str:
    """One row per search: its pick, verdict, the pick's difference to plain and the controls' (points, 95%)."""
    def diff(row: dict | None) -> str:
        if row is None:
            return "–"
        low, mean, high = (100 * float(row[k]) for k in ("diff_vs_plain_ci95_low", "diff_vs_plain_mean",
                                                          "diff_vs_plain_ci95_high"))
        return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"

    lines = ["| search | wall s | pick | confirmed | the pick vs plain [95%] | SE r16 / CBAM r16/k7 vs plain |",
             "|---|---|---|---|---|---|"]
    for o in outcomes:
        rows = {r["name"]: r for r in o["rows"]}
        pick = next((r for r in o["rows"] if r["arch"] == o["pick"]), None) if o["pick_better"] else None
        arch = o["pick"].replace("|", "\\|")  # a pipe inside a markdown cell
        lines.append(f"| {o['dataset']} seed {o['seed']} | {o['wall_s']:.0f} | `{arch}` | "
                     f"{'better' if o['pick_better'] else 'keep the plain backbone'} | {diff(pick)} | "
                     f"{diff(rows.get('se_r16'))} / {diff(rows.get('cbam_r16_k7'))} |")
    return "\n".join(lines)


def summary(outcomes: Sequence[dict], *, solvers: frozenset[str] | None = None) -> str:
    """Recall on the relation set, false positives on the others, as lines. A pick "holds" a set of kinds when one
    of its stages or its head is of such a kind (:func:`kinds_in`): the assumed planted kinds (nl, gc) and, when
    ``--why`` measured them, the kinds that learn the relation alone (``solvers``)."""
    def holds(outcome: dict, kinds: Sequence[str] | frozenset[str]) -> bool:
        return outcome["pick_better"] and bool(kinds_in(outcome["pick"]) & set(kinds))

    def searched(outcome: dict) -> list[dict]:  # the confirmed-better rows the search found (controls left out)
        controls = control_names(outcome["dataset"])
        return [r for r in outcome["rows"] if r["verdict"] == "better" and r["name"] not in controls]

    measured = f"holds a learner ({', '.join(sorted(solvers)) or 'none'})" if solvers is not None else ""
    lines = ["", f"dataset   searches  confirmed better  pick holds nl/gc  {measured}".rstrip()]
    for dataset in DATASETS:
        runs = [o for o in outcomes if o["dataset"] == dataset]
        if runs:
            lines.append(f"{dataset:<9} {len(runs):<9} {sum(o['pick_better'] for o in runs):<17} "
                         f"{sum(holds(o, PLANTED_TYPES) for o in runs):<17} "
                         + (f"{sum(holds(o, solvers) for o in runs)}" if solvers is not None else "").rstrip())
    relation = [o for o in outcomes if o["dataset"] == "relation"]
    if relation:
        gains = [float(r["diff_vs_plain_mean"]) for o in relation for r in o["rows"]
                 if r["arch"] == o["pick"] and o["pick_better"]]
        lines.append(f"recall: {sum(o['pick_better'] for o in relation)} of {len(relation)} relation searches confirm "
                     f"a placement better" + (f" (the pick by {min(gains):+.3f} to {max(gains):+.3f})" if gains else "")
                     + f"; {sum(holds(o, PLANTED_TYPES) for o in relation)} of them pick nl or gc"
                     + (f", {sum(holds(o, solvers) for o in relation)} a kind that learns it alone"
                        if solvers is not None else ""))
        found = [rows for rows in map(searched, relation) if rows]

        def holding(kinds: Sequence[str] | frozenset[str]) -> int:
            return sum(any(kinds_in(r["arch"]) & set(kinds) for r in rows) for rows in found)

        lines.append(f"searched architectures alone (controls left out): {len(found)} of {len(relation)} relation "
                     f"searches confirm one better, {holding(PLANTED_TYPES)} of them holding nl or gc"
                     + (f", {holding(solvers)} of them holding a kind that learns it alone"
                        if solvers is not None else ""))
    for dataset in ("twin", "fashion"):
        runs = [o for o in outcomes if o["dataset"] == dataset]
        if runs:
            lines.append(f"false positives on {dataset}: {sum(o['pick_better'] for o in runs)} of {len(runs)}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
