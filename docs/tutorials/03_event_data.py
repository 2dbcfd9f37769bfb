"""Lesson 3: event data (SHD, DVS Gesture, N-MNIST, ...): from events to time-first tensors to a trained net.

Run it: ``python docs/tutorials/03_event_data.py`` (seconds). It writes small SHD-layout files with
``neurosynth.datasets.testing`` so it needs no download; point ``load`` at your real data folder instead
(``load("shd", "~/data", "train")`` expects ``~/data/SHD/shd_train.h5``; ``download=True`` fetches it, and a
missing file raises an error naming the path, the files and the URL). ``neurosynth data info shd
--data-root ~/data`` tells you what is there.

What you learn: ``neurosynth.datasets.load``, binning events into ``T`` frames (``Binning``),
``collate_time_first`` for variable-length batches, a recurrent LIF layer, and membrane readouts.
"""

import os
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import neurosynth as ns
from neurosynth.datasets import Binning, collate_time_first, load
from neurosynth.datasets.testing import write_fake_shd
from neurosynth.layers import Recurrent

QUICK = os.environ.get("NEUROSYNTH_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("NEUROSYNTH_TUTORIAL_OUT", "runs/tutorials")) / "03_event_data"
torch.manual_seed(0)

root = Path(tempfile.mkdtemp(prefix="neurosynth-tutorial-"))
# informative=True: each class fires its own group of channels, so there is something to learn
write_fake_shd(root, n_train=40 if QUICK else 200, n_test=20 if QUICK else 100, seed=0, n_classes=4,
               max_events=200, informative=True)

# 1. Load. Events (t, channel) are binned into T steps of dt microseconds; the sample is [T, 700] spike counts.
T = 25 if QUICK else 50
train = load("shd", root, "train", T=T, cache=False)
test = load("shd", root, "test", T=T, cache=False)
x0, y0 = train[0]
print(f"{len(train)} training samples; one is {tuple(x0.shape)} (T x channels), label {y0}")

# The same knobs as a Binning (also: dt in us, event_count, denoise_us, spatial_factor for cameras, binary).
b = Binning(T=T, binary=True)
x_bin, _ = load("shd", root, "train", binning=b, cache=False)[0]
assert x_bin.max() <= 1

# 2. Batch. collate_time_first stacks samples to [T, B, ...] and pads shorter ones (lengths come along).
loader = DataLoader(train, batch_size=16, shuffle=True, collate_fn=collate_time_first,
                    generator=torch.Generator().manual_seed(0))
test_loader = DataLoader(test, batch_size=32, collate_fn=collate_time_first)
x, y, lengths = next(iter(loader))
print("batch:", tuple(x.shape), "labels", tuple(y.shape))

# 3. A recurrent LIF layer and a leaky-integrator (LI) readout: the class score is the readout membrane's
#    maximum over time (loss "max_membrane_ce"), the standard choice for SHD.
net = ns.SNN(
    torch.nn.Linear(700, 64),
    Recurrent(64, ns.LIF(beta=0.95)),
    torch.nn.Linear(64, 4),
    ns.LI(beta=0.95),
)
hist = ns.fit(net, loader, epochs=2 if QUICK else 10, lr=5e-3, loss="max_membrane_ce", val_loader=test_loader,
              progress=False)
print("test accuracy per epoch:", [round(a, 3) for a in hist["val_accuracy"]])

from neurosynth.plots import plot_history  # noqa: E402

plot_history(hist, OUT / "history.png", "fake SHD, recurrent LIF")
# For real data and the full recipe: examples/train_shd.py and examples/train_dvs_gesture.py
# (`--benchmark N` times training on generated inputs of the real shapes, with no data at all).
