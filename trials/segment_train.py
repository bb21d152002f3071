"""What the training loop (``trials.train.train_epochs``) needs for segmentation: a batch drawn with its masks
augmented alongside, and validation as mean IoU and pixel accuracy.

Metrics (fractions 0–1, over a whole split, from one confusion matrix of every pixel; no class is ignored):

- ``pixel_acc``: pixels whose predicted class is the true class / all pixels.
- ``miou``: the mean over classes of IoU_c = TP_c / (TP_c + FP_c + FN_c), taken over the classes *present* in the
  split, i.e. those that are in the ground truth or in the prediction (TP + FP + FN > 0); a class in neither has no
  IoU and is left out rather than counted as 1 or 0. The background class (0) counts like any other. Computed over
  the split's pixels at once (the dataset-level IoU of Pascal VOC / Cityscapes), not averaged per image.
"""

from __future__ import annotations

import torch
from torch import nn

from trials.augment import augment, normalize
from trials.slot import ProbeSlot
from trials.train import EpochTask, _autocast  # noqa: PLC2701 - the loop's own precision rule, one home
from trials.segment_data import MaskData

_EVAL_BATCH = 256  # scenes per validation forward pass (64×64 masks: logits of 256 scenes are ~46 MB at 11 classes)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """int64 num_classes×num_classes counts, rows = true class, columns = predicted class, over every pixel."""
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(confusion: torch.Tensor) -> dict[str, float]:
    """``miou`` and ``pixel_acc`` (module docstring) from a confusion matrix."""
    confusion = confusion.double()
    tp = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - tp  # TP + FP + FN per class
    present = union > 0
    miou = (tp[present] / union[present]).mean().item() if bool(present.any()) else 0.0
    return {"miou": miou, "pixel_acc": (tp.sum() / confusion.sum().clamp(min=1)).item()}


def evaluate_segmentation(model: nn.Module, data: MaskData, *, device: torch.device, prepare=None, split: str = "val",
                          slot: ProbeSlot | None = None, precision: str = "fp32") -> dict[str, float]:
    """``{"miou", "pixel_acc"}`` on ``split`` ("val", or "test" when loaded), eval mode, no augmentation; the
    arguments as ``trials.evaluate``'s."""
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}; valid: val, test")
    images, masks = (data.val_x, data.val_y) if split == "val" else (data.test_x, data.test_y)
    if images is None:
        raise ValueError(f"dataset {data.name!r} was loaded without its test split (load_segmentation(..., test=True))")
    prepare = prepare or (lambda batch: normalize(batch, mean=data.mean, std=data.std))
    slot = slot or ProbeSlot(None)
    model.eval()
    confusion = torch.zeros(data.num_classes, data.num_classes, dtype=torch.int64, device=device)
    with slot.shared() as pause, torch.inference_mode(), _autocast(device, precision):
        for start in range(0, len(masks), _EVAL_BATCH):
            pause()
            logits = model(prepare(images[start:start + _EVAL_BATCH]))
            confusion += confusion_matrix(logits.argmax(dim=1), masks[start:start + _EVAL_BATCH],
                                          num_classes=data.num_classes)
    return scores(confusion)


def draw_with_masks(data: MaskData, idx: torch.Tensor,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``idx``, images and masks cropped and flipped together (the mask rides as one more uint8 channel
    through ``trials.augment``; padding becomes background, class 0), masks as int64 N×H×W."""
    images, masks = data.train_x[idx], data.train_y[idx]
    both = augment(torch.cat([images, masks[:, None]], dim=1), crop_padding=data.crop_padding, flip=data.flip,
                   generator=generator)
    return both[:, :-1], both[:, -1].long()


def _validate(model: nn.Module, data: MaskData, **kwargs) -> dict[str, float]:
    return {f"val_{name}": value for name, value in evaluate_segmentation(model, data, **kwargs).items()}


SEGMENT = EpochTask(draw=draw_with_masks, validate=_validate)  # reports val_miou and val_pixel_acc
