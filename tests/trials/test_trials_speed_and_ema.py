"""The training arithmetic chosen by measurement (trials.speed) and the evaluated weight average (TrainConfig.ema)."""

from __future__ import annotations

import pytest
import torch

from trials import TrainConfig, evaluate, load_dataset
from trials.augment import normalize
from trials.speed import CANDIDATES, MARGIN, choose_precision, fastest
from trials.train import train_epochs


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic", train_size=512, val_size=256, seed=0)


def test_fastest_keeps_fp32_unless_another_setting_clearly_wins() -> None:
    fp32, nhwc, bf16 = CANDIDATES
    assert fastest({fp32: 100.0, nhwc: 105.0, bf16: 100.0 * MARGIN * 0.99}) == fp32  # within the margin: fp32
    assert fastest({fp32: 100.0, nhwc: 120.0, bf16: 280.0}) == bf16
    assert fastest({fp32: 100.0, nhwc: 130.0, bf16: 60.0}) == nhwc  # bf16 without AMX can be slower than fp32


def test_choose_precision_times_every_setting_on_the_real_model(synthetic, tiny_cnn) -> None:
    model = tiny_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    images = normalize(synthetic.train_x[:32], mean=synthetic.mean, std=synthetic.std)
    choice = choose_precision(model, images=images, labels=synthetic.train_y[:32], steps=2)
    assert set(choice.img_s) == set(CANDIDATES) and all(rate > 0 for rate in choice.img_s.values())
    assert choice.label == fastest(choice.img_s) and choice.label in choice.describe()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # timed on a copy


@pytest.mark.parametrize("bad", [dict(precision="fp16"), dict(ema=1.0), dict(ema=-0.1)])
def test_train_config_refuses_bad_values(bad) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def _train(tiny_cnn, data, **cfg) -> tuple[torch.nn.Module, list[dict]]:
    torch.manual_seed(0)
    model = tiny_cnn()
    epochs = list(train_epochs(model, data, TrainConfig(epochs=2, batch_size=64, lr=0.2, **cfg), device="cpu"))
    return model, epochs


def test_the_model_returned_is_the_validated_average(synthetic, tiny_cnn) -> None:
    live, _ = _train(tiny_cnn, synthetic)
    averaged, epochs = _train(tiny_cnn, synthetic, ema=0.9, report_raw=True)
    assert all("val_acc_raw" in e for e in epochs)
    # same seed, same steps: the live weights of the EMA run are those of the plain run, so the raw val_acc matches
    assert epochs[-1]["val_acc_raw"] == pytest.approx(evaluate(live, synthetic, device=torch.device("cpu")))
    # what the last epoch validated is what the caller now holds (weights and BatchNorm statistics averaged)
    assert epochs[-1]["val_acc"] == pytest.approx(evaluate(averaged, synthetic, device=torch.device("cpu")))
    assert not all(torch.equal(a, b) for a, b in zip(live.state_dict().values(), averaged.state_dict().values()))
    bn_live, bn_avg = live[1].running_mean, averaged[1].running_mean
    assert not torch.equal(bn_live, bn_avg)


def test_bf16_and_channels_last_train_on_cpu(synthetic, tiny_cnn) -> None:
    model, epochs = _train(tiny_cnn, synthetic, precision="bf16", channels_last=True)
    assert all(torch.isfinite(torch.tensor(e["train_loss"])) for e in epochs)
    assert model[0].weight.dtype == torch.float32  # autocast: the weights stay fp32
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
