"""The ImageNet transfer: NetworkImageNet's size and shapes, image folders, label smoothing,
the 0.97 step schedule, and `dartsviz train --dataset imagenet` on a tiny image folder."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dartsviz import DARTS_V2
from dartsviz.cli import main
from dartsviz.data import DataError, load_data
from dartsviz.imagefolder import IMAGENET_MEAN, IMAGENET_STD, load_image_folders
from dartsviz.spaces.cnn.imagenet import NetworkImageNet
from dartsviz.spaces.cnn.network import count_macs
from dartsviz.train import Train, TrainConfig

torch.set_num_threads(1)

PAPER_PARAMS = 4.7e6            # DARTS Table 3, second-order cell, mobile setting
PAPER_MACS = 574e6


@pytest.fixture(scope="module")
def net224():
    torch.manual_seed(0)
    return NetworkImageNet(DARTS_V2, C=48, num_classes=1000, layers=14, auxiliary=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes of random 40x48 PNGs (8 train, 4 val each); each class has its own tint."""
    from PIL import Image
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        for k in range(3):
            d = root / split / f"n0{k}"
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                a[..., k] = 230
                Image.fromarray(a).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", device="cpu")


# -- the network -----------------------------------------------------------------------
def test_darts_v2_parameters_are_the_authors(net224, shape_count):
    n = net224.num_parameters()
    # the count the authors' train_imagenet.py prints (4.718752 MB), the paper's 4.7M
    assert n == shape_count(DARTS_V2, C=48, layers=14, num_classes=1000, imagenet=True) == 4_718_752
    count = lambda m: sum(p.numel() for p in m.parameters())
    # stems and classifier by hand: conv weights + BatchNorm (weight, bias)
    assert count(net224.stem0) == 3 * 24 * 9 + 2 * 24 + 24 * 48 * 9 + 2 * 48
    assert count(net224.stem1) == 48 * 48 * 9 + 2 * 48
    assert count(net224.classifier) == (4 * 4 * 48) * 1000 + 1000      # 4 nodes x 4C channels
    # the auxiliary head is left out, as in the paper
    assert net224.num_parameters(auxiliary=True) - n == count(net224.auxiliary_head) > 0
    # the evaluation network's pooling ops carry no BatchNorm
    assert not any(isinstance(m, nn.BatchNorm2d) for cell in net224.cells for node in cell.ops for op in node
                   if isinstance(op, (nn.MaxPool2d, nn.AvgPool2d)) for m in op.modules())


def test_shapes_at_224_and_the_macs_count(net224):
    sizes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: sizes.__setitem__(k, tuple(o.shape)))
             for k, m in [("stem0", net224.stem0), ("stem1", net224.stem1)]
             + [(f"cell{i}", c) for i, c in enumerate(net224.cells)]]
    convs = []
    hooks += [m.register_forward_hook(lambda m, i, o: convs.append(m.weight.numel() * o.shape[-2] * o.shape[-1]))
              for n, m in net224.named_modules() if isinstance(m, nn.Conv2d) and not n.startswith("auxiliary")]
    net224.eval()
    with torch.no_grad():
        logits = net224(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert logits.shape == (1, 1000)
    assert sizes["stem0"] == (1, 48, 56, 56) and sizes["stem1"] == (1, 48, 28, 28)
    assert sizes["cell3"] == (1, 192, 28, 28) and sizes["cell4"] == (1, 384, 14, 14)
    assert sizes["cell9"] == (1, 768, 7, 7) and sizes["cell13"] == (1, 768, 7, 7)   # the 7x7 pool
    # count_macs: conv weights x output pixels, plus the classifier's weights (no BN, pooling, additions)
    macs = count_macs(net224, (3, 224, 224))
    assert macs == sum(convs) + 768 * 1000
    assert 0.90 * PAPER_MACS < macs < PAPER_MACS        # 530M: see the module docstring
    # the auxiliary head in training reads the 7x7 output of cell 9 (pool 5 stride 2 -> 2x2)
    seen = {}
    h = net224.auxiliary_head.register_forward_pre_hook(lambda m, i: seen.__setitem__("aux_in", i[0].shape))
    net224.train()
    with torch.no_grad():
        out = net224(torch.randn(2, 3, 224, 224))
    h.remove()
    net224.eval()
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 1000), (2, 1000)]
    assert seen["aux_in"] == (2, 768, 7, 7)


@pytest.mark.parametrize("crop", [32, 40])
def test_small_crops_give_logits_and_auxiliary_logits(crop):
    torch.manual_seed(0)
    net = NetworkImageNet(DARTS_V2, C=8, num_classes=5, layers=3, image_size=crop, aux_widths=(8, 8))
    net.drop_path_prob = 0.2
    logits, aux = net.train()(torch.randn(2, 3, crop, crop))
    assert logits.shape == aux.shape == (2, 5)
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    assert net.eval()(torch.randn(1, 3, crop, crop)).shape == (1, 5)


def test_bad_network_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="even"):
        NetworkImageNet(DARTS_V2, C=7)
    with pytest.raises(ValueError, match="Genotype"):
        NetworkImageNet("DARTS_V2")


# -- image folders ---------------------------------------------------------------------------
def test_image_folders_load_with_the_two_transforms(folder):
    data = load_image_folders(folder, crop=24)
    assert (data.num_classes, len(data.train), len(data.test)) == (3, 24, 12)
    x, y = data.train[0]
    assert x.shape == (3, 24, 24) and y == 0
    # the test transform is deterministic; the training one is random
    assert torch.equal(data.test[5][0], data.test[5][0])
    assert not torch.equal(data.train[5][0], data.train[5][0])
    # normalised with ImageNet's mean and std: a pixel of value v becomes (v - mean) / std
    from PIL import Image
    img = Image.open(data.test.samples[0][0]).convert("RGB")
    import torchvision.transforms.functional as TF
    raw = TF.to_tensor(TF.center_crop(TF.resize(img, round(24 * 256 / 224)), 24))        # (3, 24, 24)
    expected = (raw - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(data.test[0][0], expected)


def test_missing_or_mismatched_folders_are_one_line_errors(folder, tmp_path, capsys):
    args = ["train", "--dataset", "imagenet", "--preset", "imagenet_tiny", "--genotype", "DARTS_V2",
            "--device", "cpu", "--quiet", "--no-plots"]
    assert main(args + ["--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "r1")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dartsviz train: error:")
    assert f"missing: {tmp_path / 'nothing' / 'train'}, {tmp_path / 'nothing' / 'val'}" in err
    assert "train/CLASS/" in err                      # the expected layout
    (tmp_path / "half" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"missing: \S*half/val$"):
        load_image_folders(tmp_path / "half")
    with pytest.raises(DataError, match="empty/val: Found no valid file"):   # a class without images
        load_image_folders(_two_splits(tmp_path / "empty", {"a": 1}, {"a": 0}))
    with pytest.raises(DataError, match="same class folders.*only in val: \\['b'\\]"):
        load_image_folders(_two_splits(tmp_path / "mism", {"a": 1}, {"a": 1, "b": 1}))
    with pytest.raises(DataError, match="unknown data set 'imagenet'.*`dartsviz train` only"):   # not for a search
        load_data("imagenet")


def _two_splits(root, train, val):
    """Image folders with {class: number of images} per split."""
    from PIL import Image
    for split, classes in (("train", train), ("val", val)):
        for name, n in classes.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / split / name / f"{i}.png")
    return root


# -- training ----------------------------------------------------------------------------------
def test_imagenet_preset_is_the_papers_transfer_setting():
    c = TrainConfig.preset("imagenet")
    assert (c.dataset, c.layers, c.channels, c.batch_size, c.epochs) == ("imagenet", 14, 48, 128, 250)
    assert (c.lr, c.lr_schedule, c.lr_gamma, c.momentum, c.weight_decay, c.grad_clip) == (0.1, "step", 0.97, 0.9, 3e-5, 5.0)
    assert (c.auxiliary, c.auxiliary_weight, c.label_smoothing, c.cutout, c.image_size) == (True, 0.4, 0.1, False, 224)
    assert c.drop_path_prob == 0.0                    # the reference train_imagenet.py's default
    # `paper` / `tiny` with dataset imagenet are the imagenet presets; explicit fields still win
    assert TrainConfig.preset("paper", dataset="imagenet") == c
    assert TrainConfig.preset("tiny", dataset="imagenet", layers=5) == TrainConfig.preset("imagenet_tiny", layers=5)
    assert TrainConfig.preset("paper").lr_schedule == "cosine" and TrainConfig.preset("paper").label_smoothing == 0.0


@pytest.mark.parametrize("field, value", [("lr_schedule", "linear"), ("lr_gamma", 0.0), ("lr_gamma", 1.5),
                                          ("label_smoothing", 1.0), ("label_smoothing", -0.1),
                                          ("workers", -1), ("image_size", 0)])
def test_bad_schedule_smoothing_and_loader_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig.preset("imagenet_tiny", **{field: value})


def _small(**kw):
    base = dict(device="cpu", layers=3, channels=4, batch_size=32, epochs=3, steps_per_epoch=2,
                aux_widths=(8, 8), drop_path_prob=0.0, cutout=False)
    return TrainConfig.preset("tiny", **{**base, **kw})


def test_label_smoothed_loss_equals_torch_cross_entropy_with_smoothing(digits):
    t = Train(DARTS_V2, _small(label_smoothing=0.1, auxiliary_weight=0.4), data=digits)
    state = t.stream.state_dict()
    x, y = next(t.stream)
    t.stream.load_state_dict(state)
    with torch.no_grad():
        logits, aux = t.model.train()(x)
        expected = F.cross_entropy(logits, y, label_smoothing=0.1) + 0.4 * F.cross_entropy(aux, y, label_smoothing=0.1)
        plain = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
        # the smoothed target by hand: 0.9 on the label plus 0.1 / classes everywhere
        target = torch.full_like(logits, 0.1 / 10).scatter_add_(1, y[:, None], torch.full((len(y), 1), 0.9))
        by_hand = -(target * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(by_hand, F.cross_entropy(logits, y, label_smoothing=0.1))
    r = t.step()
    assert r["train_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(expected) - float(plain)) > 1e-3


def test_step_schedule_multiplies_the_lr_by_0_97_each_epoch(digits):
    t = Train(DARTS_V2, _small(lr=0.1, lr_schedule="step", lr_gamma=0.97), data=digits)
    lr, expected = 0.1, []
    for _ in range(3):
        expected += [lr, lr]                          # 2 steps an epoch
        lr *= 0.97
    t.run()
    steps = [r for r in t.history if r["kind"] == "step"]
    assert [r["lr"] for r in steps] == pytest.approx(expected, rel=1e-12)
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.97 ** 2)
    assert t.lr_at(10) == pytest.approx(0.1 * 0.97 ** 3)          # held after the last epoch (3)


def test_cli_trains_on_a_tiny_image_folder_and_reports_test_accuracy(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "imagenet", "--preset", "imagenet_tiny", "--genotype", "DARTS_V2",
                 "--data-dir", str(folder), "--device", "cpu", "--out", str(out), "--quiet", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 24 // 8                # one epoch of the 24 training images
    assert f"test accuracy: {summary['test_acc']:.4f}" in printed and "multiply-adds" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["dataset"], config["label_smoothing"], config["lr_schedule"], config["image_size"]) == \
        ("imagenet", 0.1, "step", 32)
    # the reported accuracy, recomputed from the saved weights over val/ by hand
    train = Train.resume(out)
    net = train.model.eval()
    data = train.data
    correct = 0
    with torch.no_grad():
        for i in range(len(data.test)):
            x, y = data.test[i]
            correct += int(net(x[None]).argmax(1).item() == y)
    assert summary["test_acc"] == pytest.approx(correct / 12)


def test_resume_with_no_workers_continues_exactly(folder, tmp_path):
    data = load_image_folders(folder, crop=32)
    config = lambda: TrainConfig.preset("imagenet_tiny", device="cpu", epochs=2, drop_path_prob=0.2)
    straight = Train(DARTS_V2, config(), data=data)
    straight.run()                                    # 2 passes of 3 batches
    first = Train(DARTS_V2, config(), out=tmp_path / "run", data=data)
    first.run(steps=2)
    resumed = Train.resume(tmp_path / "run", data=data)
    assert resumed.stream.state_dict() == {"pass": 0, "pos": 2}
    resumed.run()
    losses = lambda t: [r["train_loss"] for r in t.history if r["kind"] == "step"]
    assert len(losses(straight)) == 6 and losses(resumed) == losses(straight)
    for (n, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
