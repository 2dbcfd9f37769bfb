"""Lesson 1: your first spiking network.

Run it: ``python docs/tutorials/01_first_snn.py`` (about a minute on one core; ``NEUROSYNTH_TUTORIAL_QUICK=1``
shrinks it to seconds, which is how CI runs every lesson).

What you learn: time-first tensors ``[T, B, features]``, spike encoding, an ``SNN`` of ``Linear`` layers and
LIF neurons, training with surrogate gradients (``fit``), deterministic evaluation, a spike raster, and a
run directory that rebuilds the model without pickles.
"""

import os
from pathlib import Path

import torch

import neurosynth as ns
from neurosynth.datasets.digits import digits_loaders
from neurosynth.plots import plot_history, plot_raster
from neurosynth.rundir import RunDir, load_run

QUICK = os.environ.get("NEUROSYNTH_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("NEUROSYNTH_TUTORIAL_OUT", "runs/tutorials")) / "01_first_snn"
torch.manual_seed(0)

# 1. Data. scikit-learn's 8x8 digits ship offline. Every pixel in [0, 1] becomes a Bernoulli spike train of T
#    steps ("rate" code). Batches are time-first: x is [T, B, 64], y is [B]. The training loader draws fresh
#    spikes every epoch; the test loader draws the same spikes on every pass, so evaluation is repeatable.
T = 8 if QUICK else 20
train, test = digits_loaders(T=T, batch_size=64, seed=0)
x, y = next(iter(train))
print("one batch:", tuple(x.shape), "spikes, labels", tuple(y.shape))

# 2. The network: layers are applied step by step; neurons carry their membrane across the T steps.
#    LIF: h[t] = beta * v[t-1] + input[t]; spike s[t] = (h[t] > threshold); v[t] = h[t] - threshold * s[t].
net = ns.SNN(
    torch.nn.Linear(64, 128), ns.LIF(beta=0.9),
    torch.nn.Linear(128, 10), ns.LIF(beta=0.9),
)
with torch.no_grad():
    out = net(x)  # [T, B, 10] output spikes
print("output spikes:", tuple(out.shape), "mean rate", round(float(out.mean()), 3))

# 3. Train. The loss "rate_ce" is the cross-entropy of the output spike counts; the spike's step function
#    gets a smooth surrogate gradient (atan by default), so plain backprop through time works.
if QUICK:  # a slice of the data is enough to see the loss fall
    from neurosynth.datasets.digits import EncodedLoader

    train = EncodedLoader(train.x[:256], train.y[:256], T=T, batch_size=64, seed=0)
hist = ns.fit(net, train, epochs=1 if QUICK else 10, lr=2e-3, val_loader=test, progress=False)
print("test accuracy per epoch:", [round(a, 3) for a in hist["val_accuracy"]])

# 4. Evaluate: the same number every time (the test loader re-encodes with a fixed generator).
a1, a2 = ns.evaluate(net, test)["accuracy"], ns.evaluate(net, test)["accuracy"]
assert a1 == a2
print(f"test accuracy {a1:.3f} (repeatable)")

# 5. Look inside: record every spiking layer and draw a raster of one sample. Plot functions return the
#    matplotlib figure (it shows in a notebook) and write a PNG only when you give a path.
with torch.no_grad():
    _, records = net(next(iter(test))[0][:, :1], record=True)
fig = plot_raster(records, OUT / "raster.png", model=net)
plot_history(hist, OUT / "history.png")

# 6. Save a run directory: arch.json (the architecture as JSON) + model.pt (weights only) + metrics.json.
#    load_run rebuilds the model from JSON without executing any pickled code.
rd = RunDir(OUT / "run")
rd.save_model(net, ns.to_spec(net, input_shape=[64]))
rd.write_json("metrics.json", {"accuracy": a1})
model, spec, metrics = load_run(OUT / "run")
assert ns.evaluate(model, test)["accuracy"] == a1
print("saved and reloaded:", OUT / "run")
