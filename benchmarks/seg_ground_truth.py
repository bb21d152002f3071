"""Ground truth for attention placement in segmentation: five U-Net arms on ``fashion_scenes``, several seeds each.

Arms (resnet10t encoder, the same decoder widths; ``backbones.unet``):

- ``plain``: no attention anywhere (smp's U-Net decoder over the timm encoder);
- ``enc_se``: SE (r 8) after every block of every encoder stage;
- ``enc_cbam``: CBAM (r 8, k 7) after every block of every encoder stage;
- ``gated_skips``: Attention U-Net's additive gate on every skip (Oktay et al. 2018);
- ``dec_scse``: smp's scSE (r 8) in every decoder block.

Every arm trains with ``trials.run_trial(task="segment")`` on the same train/val scenes per seed (the seed sets the
scenes, the init, the batch order and the augmentation alike for every arm) and is scored on the fixed test scenes
(t10k garments only). Prints per arm and seed val_miou / test_miou, then per arm the mean and std over seeds, the
seed std of the paired difference to ``plain`` (the noise a comparison on the same seeds sees), and the markdown
block for BENCHMARKS.md. A CSV of the rows goes to ``--out`` when given (``benchmarks/data/...``).

    python -m benchmarks.seg_ground_truth --seeds 3 --epochs 8 --train-size 4000    # the table (CPU: hours)
    python -m benchmarks.seg_ground_truth --quick                                    # a smoke run (figures meaningless)
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from backbones import build
from benchmarks._common import emit, fill_defaults, header, parser, setup, table
from trials import ProbeConfig, TrainConfig, evaluate_segmentation, load_segmentation, run_trial

STAGES = 4  # resnet10t
_ENCODER = {"backbone": "resnet10t", "in_chans": 1, "small_input": False, "task": "segment"}
_PLAIN = {"stages": [{"attn": "none"}] * STAGES, "decoder": [{"attn": "none"}] * STAGES,
          "skips": ["none"] * (STAGES - 1)}
ARMS: dict[str, dict] = {
    "plain": _PLAIN,
    "enc_se": {**_PLAIN, "stages": [{"attn": "se", "reduction": 8}] * STAGES},
    "enc_cbam": {**_PLAIN, "stages": [{"attn": "cbam", "reduction": 8, "kernel_size": 7}] * STAGES},
    "gated_skips": {**_PLAIN, "skips": ["gate"] * (STAGES - 1)},
    "dec_scse": {**_PLAIN, "decoder": [{"attn": "scse", "reduction": 8}] * STAGES},
}
_DEFAULTS = {"cpu": {"seeds": 3, "epochs": 8, "train_size": 4000, "val_size": 1000, "batch_size": 64, "width": 1.0},
             "cuda": {"seeds": 5, "epochs": 15, "train_size": 8000, "val_size": 1000, "batch_size": 128, "width": 1.0}}
_QUICK = {"seeds": 2, "epochs": 1, "train_size": 64, "val_size": 32, "batch_size": 32, "width": 0.25}
_QUICK_TEST_SIZE = 32  # test scenes scored in a --quick run (the full run scores all 2,000)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds per arm (default 3 on CPU)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--train-size", dest="train_size", type=int, default=None, help="train scenes")
    p.add_argument("--val-size", dest="val_size", type=int, default=None, help="val scenes")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--width", type=float, default=None, help="encoder width multiplier on (64, 128, 256, 512)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    p.add_argument("--out", type=Path, default=None, help="write the rows as CSV here")
    args = p.parse_args(argv)
    device = setup(args)
    fill_defaults(args, device=device, defaults=_DEFAULTS, quick=_QUICK)
    arms = [a for a in args.arms.split(",") if a]
    if unknown := sorted(set(arms) - set(ARMS)):
        p.error(f"unknown arm(s) {unknown}; valid: {', '.join(ARMS)}")
    channels = [max(8, round(c * args.width)) for c in (64, 128, 256, 512)]
    rows = []
    for seed in range(args.seeds):
        data = load_segmentation("fashion_scenes", train_size=args.train_size, val_size=args.val_size, seed=seed,
                                 test=True, test_size=_QUICK_TEST_SIZE if args.quick else None)
        for arm in arms:
            arch = {**_ENCODER, **ARMS[arm], "num_classes": data.num_classes,
                    "backbone_kwargs": {"channels": channels, "stem_width": max(8, channels[0] // 2)}}
            torch.manual_seed(seed)
            model = build(arch)
            result = run_trial(model=model, data=data, device=str(device), task="segment",
                               train=TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=seed),
                               probe=ProbeConfig(runs=3 if args.quick else 20, warmup=1 if args.quick else 5, batch=0))
            test = evaluate_segmentation(model, data, device=device, split="test")
            row = {"arm": arm, "seed": seed, "val_miou": result.metrics["val_miou"], "test_miou": test["miou"],
                   "test_pixel_acc": test["pixel_acc"], "params_m": result.metrics["params_m"],
                   "latency_ms": result.metrics["latency_ms"], "epoch_s": result.metrics["epoch_s"]}
            rows.append(row)
            print(f"seed {seed} {arm:<12} val_miou {row['val_miou']:.4f}  test_miou {row['test_miou']:.4f}  "
                  f"epoch {row['epoch_s']:.1f} s", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    figures, body = _summarise(rows, arms)
    head = header(device, argv, "benchmarks.seg_ground_truth")
    emit("Segmentation ground truth (fashion_scenes, resnet10t U-Net)", head, body)
    return figures


def _summarise(rows: list[dict], arms: list[str]) -> tuple[dict[str, float], str]:
    """Per arm: mean ± std over seeds of val and test mIoU, and the seed std of the paired test difference to plain."""
    def column(arm: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["arm"] == arm]

    def std(values: list[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else float("nan")

    figures, lines = {}, []
    for arm in arms:
        val, test = column(arm, "val_miou"), column(arm, "test_miou")
        paired = ([t - b for t, b in zip(test, column("plain", "test_miou"))] if "plain" in arms and arm != "plain"
                  else [])
        figures[f"{arm}_test_miou"] = statistics.fmean(test)
        figures[f"{arm}_test_miou_std"] = std(test)
        lines.append([arm, len(test), f"{statistics.fmean(val):.4f} ± {std(val):.4f}",
                      f"{statistics.fmean(test):.4f} ± {std(test):.4f}",
                      f"{statistics.fmean(paired):+.4f} ± {std(paired):.4f}" if paired else "–",
                      f"{statistics.fmean(column(arm, 'params_m')):.3f}"])
    body = table(["arm", "seeds", "val mIoU (mean ± seed std)", "test mIoU (mean ± seed std)",
                  "test mIoU − plain (paired, mean ± seed std)", "params (M)"], lines)
    return figures, body


if __name__ == "__main__":
    main()
