import pytest
import torch

from dartsviz.data import BatchStream, DataError, iterate, load_data


def test_digits_split_half_and_half_with_a_held_out_test_split():
    d = load_data("digits")
    n_train, n_val, n_test = len(d.train[0]), len(d.val[0]), len(d.test[0])
    assert n_train + n_val + n_test == 1797
    assert abs(n_train - n_val) <= 1
    assert n_test == round(0.2 * 1797)
    assert d.in_channels == 1 and d.image_size == 8 and d.num_classes == 10
    x = d.prepare(d.train[0][:64])
    assert x.dtype == torch.float32 and abs(float(x.mean())) < 0.3



def test_batch_stream_is_a_persistent_shuffle_and_resumes_exactly():
    d = load_data("digits")
    s = BatchStream(d, "train", 100, seed=3)
    seen = torch.cat([next(s)[1] for _ in range(len(s))])
    assert len(seen) == len(s) * 100
    state = s.state_dict()
    a = [next(s) for _ in range(12)]              # crosses a reshuffle
    s2 = BatchStream(d, "train", 100, seed=99)
    s2.load_state_dict(state)
    b = [next(s2) for _ in range(12)]
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_one_pass_sees_every_example_once():
    d = load_data("synthetic:1x4x4")       # random rows: all distinct
    s = BatchStream(d, "train", 8, seed=0)
    xs = torch.cat([next(s)[0] for _ in range(len(s))]).flatten(1)     # (n, 16)
    assert len(xs) == (len(d.train[0]) // 8) * 8
    assert len({tuple(r.tolist()) for r in xs}) == len(xs)


def test_cifar_like_augmentation_keeps_shape_and_is_seeded():
    d = load_data("synthetic:3x32x32")
    d.augment = True
    a = BatchStream(d, "train", 16, seed=1)
    b = BatchStream(d, "train", 16, seed=1)
    xa, _ = next(a)
    xb, _ = next(b)
    assert xa.shape == (16, 3, 32, 32) and torch.equal(xa, xb)
    plain = BatchStream(d, "train", 16, seed=1, augment=False)
    xp, _ = next(plain)
    assert not torch.equal(xa, xp)


def test_augmented_stream_crops_and_flips_as_drawn_and_resumes_exactly():
    d = load_data("synthetic:2x6x6")
    d.augment = True
    s = BatchStream(d, "train", 8, seed=4)
    next(s)
    state = s.state_dict()
    pos, shifts, perm = s.pos, s.shifts.clone(), s.perm.clone()
    x, _ = next(s)
    # oracle: a plain loop over the images with the drawn offsets and flips
    raw = d.prepare(d.train[0][perm[pos:pos + 8]])
    padded = torch.nn.functional.pad(raw, (4, 4, 4, 4))
    for i in range(8):
        dy, dx, flip = shifts[:, pos + i].tolist()
        want = padded[i, :, dy:dy + 6, dx:dx + 6]
        assert torch.equal(x[i], want.flip(2) if flip else want)
    later = [next(s) for _ in range(2 * len(s))]          # crosses new passes
    r = BatchStream(d, "train", 8, seed=123)
    r.load_state_dict(state)
    assert torch.equal(next(r)[0], x)
    for (xa, ya), (xb, yb) in zip(later, [next(r) for _ in range(2 * len(s))]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_synthetic_shapes_and_iterate_covers_the_split():
    d = load_data("synthetic:3x16x16")
    assert d.train[0].shape[1:] == (3, 16, 16)
    assert sum(len(y) for _, y in iterate(d, "test", 50)) == len(d.test[1])


@pytest.mark.parametrize("name", ["imagenet", "cifar-10", ""])
def test_unknown_data_set_names_the_choices(name):
    with pytest.raises(DataError, match="choose from digits"):
        load_data(name)


@pytest.mark.parametrize("name", ["cifar10", "mnist", "fashion_mnist", "cifar100"])
def test_missing_torchvision_data_says_how_to_get_it_and_downloads_nothing(tmp_path, name):
    with pytest.raises(DataError, match="--download") as e:
        load_data(name, data_dir=str(tmp_path), download=False)
    assert "\n" not in str(e.value)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_bad_synthetic_spec():
    with pytest.raises(DataError, match="synthetic:CxHxW"):
        load_data("synthetic:3x32")
