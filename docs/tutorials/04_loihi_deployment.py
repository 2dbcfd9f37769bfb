"""Lesson 4: deploy to Intel Loihi 2 (train what the chip runs, export netx HDF5, check it in Lava).

Run it: ``python docs/tutorials/04_loihi_deployment.py`` (about a minute; the Lava part needs the ``lava``
extra, see ``docs/hardware_lava.md``, and is skipped without it).

What you learn: the Loihi-exact model family (``loihi_mlp_spec``: 8-bit weights, 12-bit decays, zero reset,
one-step synaptic delays, trained with quantisation in the loop), ``extract`` (which refuses, with a fix,
anything Loihi cannot run), the netx file, our bit-accurate integer reference, and the Lava check.

The command-line equivalent: ``neurosynth train --loihi --out R`` then
``neurosynth export loihi --model R --out R/net.h5 --verify 450``.

What to do with ``net.h5`` afterwards
-------------------------------------
* **Lava simulator (open source, any PC):** lava-dl's ``netx`` reads the file::

      from lava.lib.dl import netx
      from lava.magma.core.run_configs import Loihi2SimCfg
      from lava.magma.core.run_conditions import RunSteps
      net = netx.hdf5.Network(net_config="net.h5")     # Lava processes: Dense/Conv + CUBA neurons
      # feed spikes: RingBuffer(data) -> net.inp ; net.out -> a sink (data is [neurons, T], conv: [W, H, C, T])
      net.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))

  netx networks run in fixed point only (``select_tag="fixed_pt"``); each layer adds one step of delay, so read
  the output ``len(layers)`` steps later than in torch. lava-dl pins old torch versions: install it in its own
  environment. ``neurosynth.hardware.lava.run_lava`` builds the same Lava processes without lava-dl.
* **Real Loihi 2:** the same script with ``Loihi2HwCfg()`` instead of ``Loihi2SimCfg``, on a machine with
  Intel's Lava extension for Loihi (lava-loihi), which is available to INRC members (Intel's Neuromorphic
  Research Community) only; Intel's cloud gives access to Loihi systems. Nothing in the file changes.
* **Check before you go:** ``neurosynth export loihi --verify N`` (or ``verify`` below) proves that Lava's
  fixed-point spikes equal our integer reference bit for bit, and reports torch vs Lava accuracy.
"""

import os
from pathlib import Path

import numpy as np
import torch

import neurosynth as ns
from neurosynth.datasets.digits import EncodedLoader, digits_loaders
from neurosynth.hardware.lava import (
    extract,
    lava_available,
    loihi_mlp_spec,
    read_netx,
    simulate,
    validate_netx,
    verify,
    write_netx,
)

QUICK = os.environ.get("NEUROSYNTH_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("NEUROSYNTH_TUTORIAL_OUT", "runs/tutorials")) / "04_loihi"
torch.manual_seed(0)

# 1. Train the Loihi-exact family on digits: QLinear -> Delay(1) -> LIF(reset="zero") with parameters on
#    Loihi's grids. Inputs must be spikes (rate code), outputs are read by spike count.
T = 16
spec = loihi_mlp_spec(64, [32 if QUICK else 64], 10, beta=0.9, threshold=1.0)
model = ns.build(spec)
train, test = digits_loaders(T=T, seed=0)
if QUICK:
    train = EncodedLoader(train.x[:320], train.y[:320], T=T, batch_size=64, seed=0)
ns.fit(model, train, epochs=1 if QUICK else 10, lr=3e-3, progress=False)
print(f"torch accuracy {ns.evaluate(model, test)['accuracy']:.3f}")

# 2. Extract the Loihi network (integer weights, decays, thresholds) and write the netx file.
net = extract(model, input_shape=(64,))
for layer in net.stages:
    p = layer.neuron
    print(f"  {layer.name}: {layer.kind} {tuple(layer.weight.shape)}, vThMant={p.vth_mant}, vDecay={p.v_decay}, "
          f"iDecay={p.i_decay}")
OUT.mkdir(parents=True, exist_ok=True)
path = write_netx(net, OUT / "net.h5")
assert validate_netx(path) == []  # the schema lava-dl's netx reader needs
net2 = read_netx(path)

# 3. Our integer reference of Loihi's fixed-point arithmetic (numpy, no Lava needed): how often does the chip
#    agree with the float torch model on the test digits?
x, y = next(iter(test))
x, y = x[:, :64 if QUICK else 256], y[:64 if QUICK else 256]
lag = net2.torch_shifts()[-1]  # Lava's extra synaptic delays: read the output that many steps later
xp = np.concatenate([x.numpy(), np.zeros((lag, *x.shape[1:]), dtype=x.numpy().dtype)])
ref = simulate(net2, xp, mode="fixed")
pred_chip = torch.as_tensor(ref.output[lag:].sum(0)).argmax(-1)
with torch.no_grad():
    pred_torch = model(x).sum(0).argmax(-1)
print(f"fixed-point reference vs torch: same prediction on {float((pred_chip == pred_torch).float().mean()):.1%} "
      f"of {len(y)} digits; accuracy {float((pred_chip == y).float().mean()):.3f}")

# 4. Lava itself (its simulator, bit-accurate fixed-point models), when installed.
if lava_available():
    n = 4 if QUICK else 32
    report = verify(model, x[:, :n], y[:n], net=net2)
    print(f"Lava: float spikes == torch: {report['float_exact']}; fixed == our reference: {report['fixed_exact']}; "
          f"accuracy torch {report['accuracy_torch']:.3f}, Lava fixed {report['accuracy_lava_fixed']:.3f}")
    assert report["fixed_exact"]
else:
    print("lava-nc is not installed: skipping the Lava run (pip install the [lava] extra, see docs/hardware_lava.md)")
print("netx file:", path)
