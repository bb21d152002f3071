import torch

from trials.augment import augment, normalize, random_crop, random_flip


def _batch(n=64, c=3, h=8, w=8):
    return torch.randint(1, 256, (n, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_shapes_and_dtypes_are_kept():
    x = _batch()
    out = augment(x, crop_padding=2, flip=True, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    z = normalize(out, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert z.dtype == torch.float32 and z.shape == x.shape


def test_crop_moves_pixels_and_each_image_is_a_shifted_window():
    x = _batch()
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(out, x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(len(x)):  # every output equals some window of the zero-padded input
        windows = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], win) for win in windows)
    shifted = (out == 0).flatten(1).any(1).float().mean()  # inputs have no zeros: a zero means a shift
    assert 0.5 < shifted < 1.0


def test_flip_mirrors_about_half_the_images():
    x = _batch(n=200)
    out = random_flip(x, generator=torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(2)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(out[i], x[i]) for i in range(len(x))])
    assert bool((flipped | kept).all())
    assert 60 < int(flipped.sum()) < 140


def test_augmentation_is_seeded_deterministic():
    x = _batch()
    a = augment(x, crop_padding=4, flip=True, generator=torch.Generator().manual_seed(7))
    b = augment(x, crop_padding=4, flip=True, generator=torch.Generator().manual_seed(7))
    c = augment(x, crop_padding=4, flip=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_normalize_matches_definition():
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    z = normalize(x, mean=(0.5,), std=(0.5,))
    assert torch.allclose(z, torch.tensor([[[[-1.0, 1.0]]]]))
