import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def gen():
    g = torch.Generator()
    g.manual_seed(1234)
    return g
