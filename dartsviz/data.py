"""Data sets as device-resident tensors, the 50/50 weight/alpha split, and batch streams.

`digits` (scikit-learn's bundled 8x8 digits) needs no download. `cifar10`, `cifar100`,
`mnist` and `fashion_mnist` are read through torchvision from a data directory and are
downloaded only when asked. `synthetic` (or `synthetic:CxHxW`) is made on the spot.
`imagenet` (FOLDER_DATASETS) is not held in memory: `dartsviz.imagefolder` reads its
image folders for a training from scratch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion_mnist", "synthetic")
FOLDER_DATASETS = ("imagenet",)   # image folders read by dartsviz.imagefolder (training only)

_TV = {  # name: (torchvision class, mean, std, classes, approx download size)
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10, "170 MB"),
    "cifar100": ("CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 100, "170 MB"),
    "mnist": ("MNIST", (0.1307,), (0.3081,), 10, "12 MB"),
    "fashion_mnist": ("FashionMNIST", (0.2860,), (0.3530,), 10, "30 MB"),
}


class DataError(ValueError):
    """A data set that cannot be had: unknown name, or missing with download off."""


@dataclass
class DataSplits:
    """Weight half, alpha half and held-out test split, as tensors on one device.

    x tensors are uint8 (B, C, H, W) for torchvision sets and float for the others;
    `prepare` turns a batch into normalised float of the working dtype.
    """

    name: str
    train: Tuple[torch.Tensor, torch.Tensor]   # the weight half
    val: Tuple[torch.Tensor, torch.Tensor]     # the alpha half
    test: Tuple[torch.Tensor, torch.Tensor]
    num_classes: int
    mean: torch.Tensor                         # (1, C, 1, 1)
    std: torch.Tensor                          # (1, C, 1, 1)
    augment: bool = False                      # random crop (pad 4) and flip for the weight half

    @property
    def in_channels(self) -> int:
        return self.train[0].shape[1]

    @property
    def image_size(self) -> int:
        return self.train[0].shape[-1]

    def prepare(self, x: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.to(dtype) / 255.0
        return ((x.to(dtype) - self.mean.to(dtype)) / self.std.to(dtype))  # (B, C, H, W)


MAX_SYNTHETIC_SIDE = 1024


def parse_synthetic(name: str) -> Tuple[int, int, int]:
    """`synthetic` -> (3, 8, 8); `synthetic:CxHxW` -> (C, H, W), each a positive integer."""
    if name == "synthetic":
        return (3, 8, 8)
    usage = f"bad synthetic data set {name!r}; use synthetic or synthetic:CxHxW with positive sizes, e.g. synthetic:3x32x32"
    try:
        c, h, w = (int(v) for v in name.split(":", 1)[1].lower().split("x"))
    except (ValueError, IndexError):
        raise DataError(usage) from None
    if not all(0 < v <= MAX_SYNTHETIC_SIDE for v in (c, h, w)):
        raise DataError(usage)
    return c, h, w


def check_dataset_name(name, folders: bool = False) -> str:
    """Raise DataError unless `name` is a known data set (a synthetic shape is parsed too);
    FOLDER_DATASETS count only with `folders=True` (a training from scratch)."""
    if folders and name in FOLDER_DATASETS:
        return name
    if not isinstance(name, str) or name.split(":", 1)[0] not in DATASETS:
        hint = f" ({name} image folders serve `dartsviz train` only)" if name in FOLDER_DATASETS else ""
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}{hint}")
    if name.startswith("synthetic"):
        if name != "synthetic" and not name.startswith("synthetic:"):
            raise DataError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
        parse_synthetic(name)
    elif ":" in name:
        raise DataError(f"unknown data set {name!r}; only synthetic takes a :CxHxW shape")
    return name


def _split(x, y, test_fraction, train_portion, seed):
    """Fixed permutation: test split first, then the rest halved into weight/alpha halves."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_test = int(round(test_fraction * len(x)))
    test, rest = perm[:n_test], perm[n_test:]
    n_w = int(train_portion * len(rest))
    return (x[rest[:n_w]], y[rest[:n_w]]), (x[rest[n_w:]], y[rest[n_w:]]), (x[test], y[test])


def _digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0   # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    return x, y


def _synthetic(shape, num_classes=10, n=1024, seed=0):
    """Class prototypes plus noise: learnable, and the same for a given seed."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(num_classes, *shape, generator=g)                # (K, C, H, W)
    y = torch.randint(0, num_classes, (n,), generator=g)
    x = protos[y] + 1.5 * torch.randn(n, *shape, generator=g)             # (n, C, H, W)
    return x, y


def _torchvision(name, data_dir, download, train):
    import torchvision.datasets as tvd
    cls_name, *_rest = _TV[name]
    cls = getattr(tvd, cls_name)
    size = _TV[name][4]
    try:
        ds = cls(root=data_dir, train=train, download=download)
    except RuntimeError as e:
        if download:
            raise DataError(f"could not download {name} into {data_dir}: {e}") from None
        raise DataError(f"{name} not found in {data_dir!r}; pass --download (about {size}) "
                        f"or --data-dir pointing at a folder that holds it") from None
    except OSError as e:
        raise DataError(f"could not read {name} from {data_dir!r}: {e}") from None
    x = torch.as_tensor(ds.data)
    if x.ndim == 3:                  # MNIST-like: (N, H, W)
        x = x.unsqueeze(1)
    else:                            # CIFAR: (N, H, W, C)
        x = x.permute(0, 3, 1, 2)
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    return x.contiguous(), y


def load_data(name: str = "digits", data_dir: str = "./data", download: bool = False,
              device="cpu", train_portion: float = 0.5, seed: int = 0,
              test_fraction: float = 0.2) -> DataSplits:
    """Load a data set and split it; everything ends up on `device`."""
    check_dataset_name(name)
    base = name.split(":", 1)[0]
    if base == "digits":
        x, y = _digits()
        mean, std = x.mean(), x.std()
        train, val, test = _split(x, y, test_fraction, train_portion, seed)
        mean_t, std_t = mean.view(1, 1, 1, 1), std.view(1, 1, 1, 1)
        k, augment = 10, False
    elif base == "synthetic":
        shape = parse_synthetic(name)
        x, y = _synthetic(shape)
        train, val, test = _split(x, y, test_fraction, train_portion, seed)
        mean_t, std_t = torch.zeros(1, shape[0], 1, 1), torch.ones(1, shape[0], 1, 1)
        k, augment = 10, False
    else:
        _, mean, std, k, _ = _TV[name]
        x, y = _torchvision(name, data_dir, download, train=True)
        xt, yt = _torchvision(name, data_dir, download, train=False)
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(x), generator=g)
        n_w = int(train_portion * len(x))
        train, val = (x[perm[:n_w]], y[perm[:n_w]]), (x[perm[n_w:]], y[perm[n_w:]])
        test = (xt, yt)
        mean_t = torch.tensor(mean).view(1, -1, 1, 1)
        std_t = torch.tensor(std).view(1, -1, 1, 1)
        augment = base.startswith("cifar")
    mv = lambda t: (t[0].to(device), t[1].to(device))
    return DataSplits(name, mv(train), mv(val), mv(test), k, mean_t.to(device), std_t.to(device), augment)


class BatchStream:
    """An endless, persistent, shuffled stream of full batches from device tensors.

    Each pass over the split draws its order (and, when augmenting, every crop offset
    and flip of the pass) from the stream's own CPU generator and moves them to the
    device once, so taking a batch never waits on the device. The generator state and
    the current pass are part of `state_dict()`, so a resumed stream continues exactly.
    """

    PAD = 4                      # augmentation: random crops from a 4-pixel zero padding

    def __init__(self, data: DataSplits, split: str, batch_size: int, seed: int,
                 dtype=torch.float32, augment: Optional[bool] = None):
        self.data, self.split = data, split
        self.x, self.y = getattr(data, split)
        if len(self.x) == 0:
            raise DataError(f"the {split} split of {data.name} is empty")
        self.batch_size = min(batch_size, len(self.x))
        self.dtype = dtype
        self.augment = data.augment and split == "train" if augment is None else augment
        self.gen = torch.Generator().manual_seed(seed)
        self._new_pass()

    def _new_pass(self) -> None:
        n = len(self.x)
        self.perm = torch.randperm(n, generator=self.gen)                          # (N,)
        self.shifts = self._draw_shifts(n) if self.augment else None               # (3, N)
        self.pos = 0
        self._to_device()

    def _draw_shifts(self, n: int) -> torch.Tensor:
        """(3, n): crop row offset, crop column offset, flip (0/1) per position of the pass."""
        span = 2 * self.PAD + 1
        return torch.stack([torch.randint(0, span, (n,), generator=self.gen),
                            torch.randint(0, span, (n,), generator=self.gen),
                            (torch.rand(n, generator=self.gen) < 0.5).long()])

    def _to_device(self) -> None:
        device = self.x.device
        self._perm_dev = self.perm.to(device)
        self._shifts_dev = self.shifts.to(device) if self.shifts is not None else None

    def __len__(self) -> int:
        """Full batches per pass."""
        return max(1, len(self.x) // self.batch_size)

    def __iter__(self):
        return self

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.batch_size > len(self.x):
            self._new_pass()
        sl = slice(self.pos, self.pos + self.batch_size)
        self.pos += self.batch_size
        idx = self._perm_dev[sl]                                                   # (B,)
        x = self.data.prepare(self.x[idx], self.dtype)       # (B, C, H, W)
        if self.augment:
            x = self._augment(x, self._shifts_dev[:, sl])
        return x, self.y[idx]

    def _augment(self, x, shifts):
        """Random crop (zero padding PAD) and horizontal flip; shifts (3, B) from the pass."""
        B, C, H, W = x.shape
        pad = self.PAD
        dy, dx, flip = shifts[0], shifts[1], shifts[2].bool()                      # (B,) each
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))           # (B, C, H+2p, W+2p)
        rows = (torch.arange(H, device=x.device)[None] + dy[:, None])       # (B, H)
        cols = (torch.arange(W, device=x.device)[None] + dx[:, None])       # (B, W)
        b = torch.arange(B, device=x.device)[:, None, None, None]
        c = torch.arange(C, device=x.device)[None, :, None, None]
        out = padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)
        return torch.where(flip[:, None, None, None], out.flip(3), out)

    def state_dict(self) -> dict:
        state = {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}
        if self.shifts is not None:
            state["shifts"] = self.shifts.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])
        self.shifts = None
        if self.augment:
            # checkpoints from before per-pass draws hold no shifts: draw the rest afresh
            shifts = state.get("shifts")
            self.shifts = shifts.clone() if shifts is not None else self._draw_shifts(len(self.perm))
        self._to_device()


def iterate(data: DataSplits, split: str, batch_size: int = 256, dtype=torch.float32):
    """Ordered batches over a whole split (for evaluation)."""
    x, y = getattr(data, split)
    for i in range(0, len(x), batch_size):
        yield data.prepare(x[i:i + batch_size], dtype), y[i:i + batch_size]
