"""ImageNet-style image folders, read from disk by torchvision and DataLoader workers.

    data = load_image_folders("/data/imagenet", crop=224, workers=8)
    stream = LoaderStream(data, batch_size=128, seed=1, device=device)
    x, y = next(stream)                    # (128, 3, 224, 224) float, (128,) long

`DIR/train/CLASS/*.JPEG` trains and `DIR/val/CLASS/*.JPEG` is the test split (the usual
layout; ImageNet's validation images must first be sorted into class folders). Training
images get the reference code's augmentation: random-resized crop, horizontal flip,
colour jitter (0.4, 0.4, 0.4, 0.2), normalisation; test images are resized to
crop*256/224 (256 at 224) and centre-cropped. Nothing is held in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Tuple

import torch

from .data import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(crop: int):
    """Random-resized crop, flip, colour jitter, tensor, normalisation."""
    import torchvision.transforms as T
    return T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip(),
                      T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def eval_transform(crop: int):
    """Resize the short side to crop*256/224, centre crop, tensor, normalisation."""
    import torchvision.transforms as T
    return T.Compose([T.Resize(round(crop * 256 / 224)), T.CenterCrop(crop),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@dataclass
class ImageFolderData:
    """The training and test image folders of one data set, with the loader settings."""

    name: str
    train: "torch.utils.data.Dataset"     # torchvision ImageFolder, train_transform
    test: "torch.utils.data.Dataset"      # torchvision ImageFolder, eval_transform
    num_classes: int
    crop: int                             # side of the square crops the network sees
    workers: int = 0                      # DataLoader worker processes

    in_channels = 3

    @property
    def image_size(self) -> int:
        return self.crop

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return (3, self.crop, self.crop)

    def test_batches(self, batch_size: int, dtype=torch.float32, device="cpu") -> Iterator:
        """Ordered batches over the whole test folder, on `device`."""
        device = torch.device(device)
        loader = torch.utils.data.DataLoader(self.test, batch_size=batch_size, shuffle=False,
                                             num_workers=self.workers, pin_memory=device.type == "cuda")
        for x, y in loader:
            yield x.to(device, dtype, non_blocking=True), y.to(device, non_blocking=True)   # (B, 3, crop, crop), (B,)


def load_image_folders(data_dir, crop: int = 224, workers: int = 0, name: str = "imagenet") -> ImageFolderData:
    """`data_dir/train` and `data_dir/val` as ImageFolders; a missing or empty folder, or
    class folders that differ between the two, raise a one-line DataError."""
    from torchvision.datasets import ImageFolder
    root = Path(data_dir).expanduser()
    layout = f"{name} needs {root}/train/CLASS/*.jpg and {root}/val/CLASS/*.jpg (one folder per class)"
    missing = [str(root / s) for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{layout}; missing: {', '.join(missing)}")
    folders = {}
    for split, transform in (("train", train_transform(crop)), ("val", eval_transform(crop))):
        try:
            folders[split] = ImageFolder(str(root / split), transform=transform)
        except (FileNotFoundError, OSError) as e:
            raise DataError(f"{layout}; {root / split}: {str(e).splitlines()[0]}") from None
    train, test = folders["train"], folders["val"]
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_val = sorted(set(test.classes) - set(train.classes))
        raise DataError(f"{root}/train and {root}/val must hold the same class folders; "
                        f"only in train: {only_train[:3] or 'none'}, only in val: {only_val[:3] or 'none'}")
    return ImageFolderData(name, train, test, len(train.classes), crop, workers)


class _PassSampler(torch.utils.data.Sampler):
    """The indices of one pass from `start` on: a permutation seeded by (seed, pass)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.pass_index, self.start = n, seed, 0, 0

    def order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.pass_index)
        return torch.randperm(self.n, generator=g)                 # (n,)

    def __iter__(self):
        return iter(self.order()[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


class LoaderStream:
    """An endless stream of full training batches from a DataLoader with worker processes.

    Pass k visits the images in a permutation seeded by (seed, k). `state_dict()` holds
    the pass and the batch position, so a resumed stream continues with the same images
    in the same order; the random crops, flips and jitter are drawn anew in the workers
    (with `workers=0` they come from the global torch generator that a checkpoint saves,
    so such a resume is exact).
    """

    def __init__(self, data: ImageFolderData, batch_size: int, seed: int, dtype=torch.float32, device="cpu"):
        self.data, self.dtype, self.device = data, dtype, torch.device(device)
        n = len(data.train)
        if n == 0:
            raise DataError(f"the train folder of {data.name} holds no images")
        self.batch_size = min(batch_size, n)
        self.sampler = _PassSampler(n, seed)
        self.loader = torch.utils.data.DataLoader(
            data.train, batch_size=self.batch_size, sampler=self.sampler, drop_last=True,
            num_workers=data.workers, pin_memory=self.device.type == "cuda",
            persistent_workers=data.workers > 0,
            generator=torch.Generator().manual_seed(seed))     # worker seeds: not from the global generator
        self.pos = 0                                           # batches taken in this pass
        self._it = None

    def __len__(self) -> int:
        """Full batches per pass."""
        return max(1, len(self.data.train) // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.pos >= len(self):
            self.sampler.pass_index += 1
            self.pos, self._it = 0, None
        if self._it is None:
            self.sampler.start = self.pos * self.batch_size
            self._it = iter(self.loader)
        x, y = next(self._it)                                   # (B, 3, crop, crop), (B,)
        self.pos += 1
        return x.to(self.device, self.dtype, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        return {"pass": self.sampler.pass_index, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.pass_index, self.pos = int(state["pass"]), int(state["pos"])
        self._it = None
