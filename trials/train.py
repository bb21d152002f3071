"""The training loop: one function, read top to bottom (in the spirit of airbench / nanoGPT).

Its settings come first: the fixed constants, then `TrainConfig` (what a trial may vary), each with its unit.
Data are device-resident uint8 tensors (`TensorData`); each epoch draws batches by a seeded
permutation, augments them on the device, trains, then evaluates on the whole validation split.
`train_epochs` is a generator: it yields one metrics dict per epoch, so the caller can report
(or be stopped) between epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trials.augment import augment, normalize
from trials.data import TensorData
from trials.slot import ProbeSlot

_WARMUP_FRACTION = 0.2  # share of all steps spent ramping the LR up linearly from ~0; then linear decay to 0
_MOMENTUM = 0.9  # SGD Nesterov momentum (dimensionless)
_EVAL_BATCH = 1024  # images per validation forward pass; eval keeps no activations, so big is cheap
_CHECK_EVERY_CUDA = 25  # steps between NaN checks on CUDA (each check syncs the GPU); on CPU: every step
_EMA_WARMUP = 10  # EMA decay at step n is min(ema, (1 + n) / (EMA_WARMUP + n)): early steps are not pulled to the init
TRAIN_PRECISIONS = ("fp32", "bf16")  # autocast dtypes of the CPU forward (on CUDA it is always bf16)


@dataclass(frozen=True)
class TrainConfig:
    """How a trial trains: its compute budget and optimiser settings (the one home of these defaults)."""

    epochs: int = 3  # passes over the training split; the LR schedule spans all of them
    batch_size: int = 128  # images per SGD step (the ragged last batch of each epoch is dropped)
    lr: float = 0.05  # peak LR of SGD+Nesterov at 20% of the steps (linear warm-up, linear decay to 0); chosen over
    # 0.2 on resnet10t/Fashion-MNIST at 3 epochs: the same final val_acc and a better epoch 1, which ASHA's rung reads
    weight_decay: float = 5e-4  # L2 on conv/linear weights (not BN/bias), per unit lr
    label_smoothing: float = 0.1  # cross-entropy target smoothing (0–1); helps short schedules
    compile: bool = False  # torch.compile the training forward (latency is always timed on the eager model); the
    # first steps pay the compilation (seconds to a minute); validation stays eager, so eval never recompiles
    seed: int = 0  # batch order and augmentation here; run_trial also seeds torch/numpy/random with it
    # CPU arithmetic of the forward (and so of the backward): "fp32", or "bf16" autocast (oneDNN's AMX / AVX-512-BF16
    # kernels; weights, optimizer and loss stay fp32). On CUDA the forward is bf16 whatever this says. Which is
    # faster depends on the host: trials.speed.choose_precision measures it (search: train.precision=auto).
    precision: str = "fp32"
    channels_last: bool = False  # NHWC activations on CPU too (oneDNN's preferred layout; on CUDA always NHWC)
    # Evaluate an exponential moving average of the weights and BatchNorm statistics (0 = off; e.g. 0.95 per step,
    # ramped in over the first steps): val_acc then moves smoothly from epoch to epoch instead of jumping with the
    # last steps' noise, so early stopping and the sampler rank on signal. The model returned holds the average.
    ema: float = 0.0
    report_raw: bool = False  # with ema: every epoch also reports val_acc_raw, the live weights' (one more pass)

    def __post_init__(self) -> None:
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(f"unknown train precision {self.precision!r}; valid: {', '.join(TRAIN_PRECISIONS)}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema={self.ema} must be in [0, 1) (0 = off)")


@dataclass(frozen=True)
class EpochTask:
    """What the loop asks a task (``trials.tasks``): ``draw(data, idx, generator)`` -> an augmented uint8 batch and
    its int64 targets (labels N, or masks N×H×W; cross-entropy takes either), and ``validate(model, data, *, device,
    prepare, slot, precision)`` -> the epoch's validation metrics (e.g. ``{"val_acc": ...}``)."""

    draw: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    validate: Callable[..., dict[str, float]]


def _draw_images(data: TensorData, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images = augment(data.train_x[idx], crop_padding=data.crop_padding, flip=data.flip, generator=generator)
    return images, data.train_y[idx]


def _validate_accuracy(model: nn.Module, data: TensorData, **kwargs: Any) -> dict[str, float]:
    return {"val_acc": evaluate(model, data, **kwargs)}


CLASSIFY = EpochTask(draw=_draw_images, validate=_validate_accuracy)  # the default: top-1 accuracy


class TrialDiverged(RuntimeError):
    """The training loss became NaN or infinite; the message names the epoch and step."""


def train_epochs(
    model: nn.Module, data: TensorData, cfg: TrainConfig, *, device: torch.device | str,
    slot: ProbeSlot | None = None, checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None, task: EpochTask = CLASSIFY,
) -> Iterator[dict[str, float]]:
    """Train `model` (already on `device`, as is `data`) as `cfg` says and yield metrics after every epoch.

    Yields {"epoch": 1-based, "train_loss": mean over the epoch, "val_acc": fraction 0–1, "epoch_s": wall
    seconds for training + validation}. Raises TrialDiverged as soon as a loss is NaN/inf. With ``cfg.ema`` the
    val_acc is the weight average's (weights and BatchNorm buffers, ``torch.optim.swa_utils.AveragedModel``), and
    after the last epoch `model` holds that average, so what was validated is what the caller tests and saves.
    slot: the search's exclusive probe slot (`trials.slot.ProbeSlot`), held shared while an epoch trains and while it
    validates, paused before every step and batch: another trial's latency probe waits for the step in flight, then
    has the machine to itself. Nothing is held between epochs (while the caller reports). None: no locking.
    checkpoint: called after every epoch, before its metrics are yielded, with the state that continues training
    exactly (``epoch``, the model's, optimizer's, LR schedule's, batch generator's and weight average's states);
    ``resume``: such a state: training continues after its epoch, bit for bit as if it had not stopped (on CPU).
    task: how batches are drawn and what validation reports (``CLASSIFY``: val_acc; ``trials.tasks`` holds the
    others, e.g. segmentation's val_miou and val_pixel_acc in val_acc's place, with ``_raw`` twins under ema).
    """
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    n_train = len(data.train_y)
    batch_size = min(cfg.batch_size, n_train)
    steps_per_epoch = n_train // batch_size  # drop the ragged batch: fixed shapes for cudnn.benchmark, sane BN stats
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = max(1, round(_WARMUP_FRACTION * total_steps))
    check_every = _CHECK_EVERY_CUDA if on_cuda else 1  # a CPU "sync" costs nothing

    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]  # conv / linear weights
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]  # BN scales/shifts, biases
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, momentum=_MOMENTUM, nesterov=True,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(  # multiplier of the peak lr at each step
        optimizer,
        lambda step: (step + 1) / warmup_steps if step < warmup_steps
        else max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps)),
    )
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    nhwc = on_cuda or cfg.channels_last
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # shapes are fixed, so autotuned kernels pay off
    if nhwc:
        model.to(memory_format=torch.channels_last)  # tensor cores and oneDNN prefer NHWC
    average = (torch.optim.swa_utils.AveragedModel(model, avg_fn=_ema_step(cfg.ema), use_buffers=True)
               if cfg.ema else None)

    slot = slot or ProbeSlot(None)  # None: a no-op slot
    forward = torch.compile(model) if cfg.compile else model  # shares model's parameters; model stays the eager module
    first = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        generator.set_state(resume["generator"])
        if average is not None:
            average.load_state_dict(resume["average"])
        first = resume["epoch"] + 1

    def prepare(images: torch.Tensor) -> torch.Tensor:
        x = normalize(images, mean=data.mean, std=data.std)
        return x.contiguous(memory_format=torch.channels_last) if nhwc else x

    for epoch in range(first, cfg.epochs + 1):
        start = time.perf_counter()

        # ---- train
        model.train()
        order = torch.randperm(n_train, device=device, generator=generator)
        losses = torch.zeros(steps_per_epoch, device=device)
        with slot.shared() as pause:  # another trial's latency probe may stop us between steps (trials.slot)
            for step in range(steps_per_epoch):
                pause()  # two flock calls; waits while another trial of the search probes its latency
                idx = order[step * batch_size:(step + 1) * batch_size]
                images, targets = task.draw(data, idx, generator)
                with _autocast(device, cfg.precision):
                    logits = forward(prepare(images))
                loss = F.cross_entropy(logits.float(), targets, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                if average is not None:
                    average.update_parameters(model)
                losses[step] = loss.detach()
                if (step + 1) % check_every == 0 or step + 1 == steps_per_epoch:
                    _raise_if_diverged(losses[: step + 1], epoch=epoch)

        # ---- validate (the weight average when there is one; after the last epoch the model takes it over)
        scores = task.validate(model if average is None else average.module, data, device=device, prepare=prepare,
                               slot=slot, precision=cfg.precision)
        raw = ({f"{k}_raw": v for k, v in task.validate(model, data, device=device, prepare=prepare, slot=slot,
                                                         precision=cfg.precision).items()}
               if average is not None and cfg.report_raw else {})
        if checkpoint is not None and epoch < cfg.epochs:
            checkpoint({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "generator": generator.get_state(),
                        **({"average": average.state_dict()} if average is not None else {})})
        if average is not None and epoch == cfg.epochs:
            model.load_state_dict(average.module.state_dict())
        if on_cuda:
            torch.cuda.synchronize(device)
        yield {
            "epoch": epoch,
            "train_loss": losses.mean().item(),
            **scores,
            **raw,
            "epoch_s": time.perf_counter() - start,
        }


def evaluate(model: nn.Module, data: TensorData, *, device: torch.device, prepare=None, split: str = "val",
             slot: ProbeSlot | None = None, precision: str = "fp32") -> float:
    """Top-1 accuracy (fraction 0–1) on `split`, eval mode, no augmentation, the same normalisation for every split.

    split: "val" (the search's validation slice) or "test" (the official test split; only when
    `load_dataset(..., test=True)` loaded it, i.e. in the confirmation phase).
    slot: held shared for the pass, paused before every batch (see `train_epochs`); None: no locking.
    precision: the CPU forward's arithmetic, as in training (`TrainConfig.precision`); on CUDA always bf16.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r}; valid: val, test")
    images, labels = (data.val_x, data.val_y) if split == "val" else (data.test_x, data.test_y)
    if images is None:
        raise ValueError(f"dataset {data.name!r} was loaded without its test split (load_dataset(..., test=True))")
    prepare = prepare or (lambda batch: normalize(batch, mean=data.mean, std=data.std))
    slot = slot or ProbeSlot(None)
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with slot.shared() as pause, torch.inference_mode(), _autocast(device, precision):
        for start in range(0, len(labels), _EVAL_BATCH):
            pause()
            logits = model(prepare(images[start:start + _EVAL_BATCH]))
            correct += (logits.argmax(dim=1) == labels[start:start + _EVAL_BATCH]).sum()
    return correct.item() / len(labels)


def _raise_if_diverged(losses: torch.Tensor, *, epoch: int) -> None:
    """Raise TrialDiverged naming the first non-finite step among `losses` (this epoch's steps so far)."""
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        step = int((~finite).nonzero()[0]) + 1
        raise TrialDiverged(
            f"training diverged: loss is {losses[step - 1].item()} at epoch {epoch}, step {step} "
            f"(lower the lr or check the model)"
        )


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 convs/matmuls on CUDA always, on CPU when ``precision`` is "bf16"; else fp32."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def _ema_step(decay: float):
    """``AveragedModel``'s avg_fn: average <- d * average + (1 - d) * current with d = min(decay, (1 + n) /
    (_EMA_WARMUP + n)) after n updates, so the first steps are not averaged with the initial weights."""

    def step(average: torch.Tensor, current: torch.Tensor, updates: torch.Tensor | int) -> torch.Tensor:
        n = int(updates)
        d = min(decay, (1 + n) / (_EMA_WARMUP + n))
        return average * d + current * (1 - d)

    return step
