"""Models, data, batch feeds and the bare training loop that the benchmarks compare trials against."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from backbones import build
from trials import DATASETS, TensorData, TrainConfig, load_dataset
from trials.augment import augment, normalize

# Benchmark models: ArchConfig parts besides in_chans / num_classes / stages (all ResNets: 4 stages, small_input).
MODELS: dict[str, dict] = {
    # the CPU budget of spaces/fashion_attention.yaml: quarter-width resnet10t
    "resnet10t_quarter": {"backbone": "resnet10t",
                          "backbone_kwargs": {"channels": [32, 64, 128, 256], "stem_width": 16}},
    "resnet18": {"backbone": "resnet18"},  # CIFAR ResNet-18: 3x3 stride-1 stem, no max-pool
}
_LABEL_SMOOTHING = TrainConfig().label_smoothing  # as trials train, so the loss costs the same in both loops
_MOMENTUM = 0.9  # SGD Nesterov momentum, as trials.train
_EVAL_BATCH = 1024  # images per validation forward, as trials.train


def make_model(name: str, *, in_chans: int, num_classes: int, stage: dict | None = None) -> nn.Module:
    """A benchmark model (a key of MODELS) through backbones.build; `stage` is put at all 4 stages (default none)."""
    arch = {**MODELS[name], "in_chans": in_chans, "num_classes": num_classes, "small_input": True,
            "stages": [dict(stage or {"attn": "none"}) for _ in range(4)]}
    return build(arch)


def cifar_like(*, train_size: int, val_size: int, seed: int = 0) -> TensorData:
    """Random uint8 3×32×32 images and labels with CIFAR-10's normalisation and augmentation (for speed only)."""
    spec = DATASETS["cifar10"].known
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (train_size + val_size, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, spec.num_classes, (train_size + val_size,), generator=g)
    return TensorData(
        name="cifar_like", train_x=images[:train_size], train_y=labels[:train_size], val_x=images[train_size:],
        val_y=labels[train_size:], num_classes=spec.num_classes, in_chans=3, mean=spec.mean, std=spec.std,
        crop_padding=spec.crop_padding, flip=spec.flip,
    )


def make_data(name: str, *, train_size: int, val_size: int) -> TensorData:
    """'fashion_mnist' (real, a seeded subset), 'synthetic' (trials' generated 1×16×16) or 'cifar_like' (random)."""
    if name == "cifar_like":
        return cifar_like(train_size=train_size, val_size=val_size)
    return load_dataset(name, train_size=train_size, val_size=val_size, seed=0)


# ---------------------------------------------------------------- feeds: where batches come from

def device_batches(data: TensorData, *, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (normalised float images, labels) made where `data` lives: index the resident uint8 split,
    augment and normalise whole batches (what trials.train does). The ragged last batch is dropped."""
    n = len(data.train_y)
    order = torch.randperm(n, device=data.train_x.device)
    for step in range(n // batch_size):
        idx = order[step * batch_size:(step + 1) * batch_size]
        images = augment(data.train_x[idx], crop_padding=data.crop_padding, flip=data.flip)
        yield normalize(images, mean=data.mean, std=data.std), data.train_y[idx]


class _PILImages(Dataset):
    """uint8 N×C×H×W array served one PIL image at a time, as torchvision's CIFAR10 / FashionMNIST do."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = self.images[i]
        pil = Image.fromarray(image[0], mode="L") if image.shape[0] == 1 else Image.fromarray(image.transpose(1, 2, 0))
        return self.transform(pil), int(self.labels[i])


def dataloader(data: TensorData, *, batch_size: int, workers: int, pin_memory: bool = False) -> DataLoader:
    """The usual torchvision pipeline over the same images: per-image PIL RandomCrop(padding),
    RandomHorizontalFlip, ToTensor, Normalize; shuffled, ragged batch dropped, persistent workers."""
    from torchvision import transforms

    size = data.image_shape[1:]
    steps = [transforms.RandomCrop(size, padding=data.crop_padding)] if data.crop_padding else []
    steps += [transforms.RandomHorizontalFlip()] if data.flip else []
    steps += [transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]
    images = _PILImages(data.train_x.cpu().numpy(), data.train_y.cpu().numpy(), transforms.Compose(steps))
    return DataLoader(images, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                      pin_memory=pin_memory, persistent_workers=workers > 0)


# ---------------------------------------------------------------- the bare loop

def bare_train(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, lr: float, weight_decay: float,
    device: torch.device,
) -> int:
    """A plain PyTorch loop over `batches`: forward, loss, backward, SGD step; no schedule, no metrics, no checks.

    Same optimiser as trials.train (SGD Nesterov, momentum 0.9, weight decay on conv/linear weights only) and,
    on CUDA, the same bf16 autocast and channels_last. Batches are moved to `device` if they are not there.
    Returns the number of images trained on.
    """
    on_cuda = device.type == "cuda"
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=_MOMENTUM, nesterov=True)
    if on_cuda:
        model.to(memory_format=torch.channels_last)
    model.train()
    images = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if on_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=_LABEL_SMOOTHING)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += len(y)
    return images


def bare_eval(model: nn.Module, data: TensorData, *, device: torch.device) -> None:
    """One forward over the validation split, as the trial's validation does (so both loops do the same work)."""
    on_cuda = device.type == "cuda"
    model.eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_cuda):
        for start in range(0, len(data.val_y), _EVAL_BATCH):
            x = normalize(data.val_x[start:start + _EVAL_BATCH], mean=data.mean, std=data.std)
            x = x.contiguous(memory_format=torch.channels_last) if on_cuda else x
            (model(x).argmax(dim=1) == data.val_y[start:start + _EVAL_BATCH]).sum().item()
