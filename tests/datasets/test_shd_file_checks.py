"""The SHD/SSC file check requires every key the reader uses and channel ids < 700 (issue 13)."""

import shutil

import h5py
import numpy as np
import pytest

from neurosynth.datasets import CorruptFileError, load
from neurosynth.datasets.testing import write_fake_shd


@pytest.fixture
def shd(tmp_path):
    meta = write_fake_shd(tmp_path / "good", n_train=4, n_test=3, seed=3)
    return tmp_path, meta


def _copy(tmp_path, meta, split="test"):
    (tmp_path / "bad" / "SHD").mkdir(parents=True)
    dst = tmp_path / "bad" / "SHD" / f"shd_{split}.h5"
    shutil.copy(meta[split]["path"], dst)
    return dst


def test_good_file_loads(shd):
    tmp_path, meta = shd
    assert len(load("shd", tmp_path / "good", "test")) == 3


def test_missing_extra_speaker_is_named(shd):
    tmp_path, meta = shd
    dst = _copy(tmp_path, meta)
    with h5py.File(dst, "a") as f:
        del f["extra/speaker"]
    with pytest.raises(CorruptFileError, match=r"lacks the datasets \['extra/speaker'\]"):
        load("shd", tmp_path / "bad", "test")


def test_channel_ids_beyond_700_are_refused(shd):
    tmp_path, meta = shd
    dst = _copy(tmp_path, meta)
    with h5py.File(dst, "a") as f:
        units = f["spikes/units"]
        u = np.array(units[1], dtype=np.uint16)
        u[0] = 700
        units[1] = u
    with pytest.raises(CorruptFileError, match="channel id 700, but SHD/SSC have 700 channels"):
        load("shd", tmp_path / "bad", "test")
