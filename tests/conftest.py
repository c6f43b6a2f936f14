import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_overrides():
    """A search small enough for a unit test: 3 cells (normal, reduce, reduce), 4 channels, 3 steps per epoch."""
    return dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=2, warmup_epochs=0)
