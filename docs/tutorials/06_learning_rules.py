"""Lesson 6: learning rules beyond backprop: STDP (unsupervised, local) and feedback-alignment rules.

Run it: ``python docs/tutorials/06_learning_rules.py`` (seconds).

What you learn:
1. the STDP window from a pure rule (``neurosynth.plasticity``), and a ``PlasticLayer`` that learns a repeated
   input pattern online, with no labels and no gradients;
2. ``neurosynth.rules``: train a spiking network with feedback alignment (``fa``) or sign-symmetric /
   random feedback (``usf``, ``brsf``, ``frsf``, ``dfa``) instead of exact backprop, by converting its layers.

Full recipes: ``neurosynth train --method stdp`` (Diehl & Cook style digits, about 90%), and
``docs/learning.md`` / ``docs/bionas.md`` for the evidence behind each rule.
"""

import os

import torch

import neurosynth as ns
from neurosynth import rules
from neurosynth.plasticity import PLASTICITY_RULES, PlasticLayer, STDPParams

QUICK = os.environ.get("NEUROSYNTH_TUTORIAL_QUICK") == "1"
torch.manual_seed(0)

# --- 1a. The STDP window: potentiation when pre fires before post (dt > 0), depression otherwise ------------
p = STDPParams(a_plus=0.01, a_minus=0.012, tau_plus=20.0, tau_minus=20.0)
print("registered plasticity rules:", PLASTICITY_RULES.names())
for dt in (-20, -5, 5, 20):
    print(f"  dt = {dt:+d} steps: dw = {float(p.window(dt, torch.tensor(0.5))):+.5f}")

# --- 1b. Online STDP: one LIF neuron, 20 inputs; inputs 0-4 fire together just before it, the rest at random --
T, n_in = 100, 20
layer = torch.nn.Linear(n_in, 1, bias=False)
torch.nn.init.constant_(layer.weight, 0.3)
plastic = PlasticLayer(layer, ns.LIF(beta=0.8, threshold=1.0), rule="stdp",
                       a_plus=0.02, a_minus=0.021, tau_plus=5.0, tau_minus=5.0, w_min=0.0, w_max=1.0)
plastic.train()
for _ in range(10 if QUICK else 40):
    x = (torch.rand(T, 1, n_in) < 0.05).float()
    x[::10, :, :5] = 1.0  # the repeated pattern: every 10 steps, inputs 0-4 together
    plastic(x)
w = layer.weight.detach()[0]
print(f"weights after STDP: pattern inputs {w[:5].mean():.2f}, random inputs {w[5:].mean():.2f}")
assert w[:5].mean() > w[5:].mean()

# --- 2. Feedback-alignment rules: the same network, a different learning rule per layer ---------------------
print("registered feedback rules:", rules.RULES.names())
x = (torch.rand(12, 64, 16) < 0.3).float()
y = (x[:, :, :8].sum((0, 2)) > x[:, :, 8:].sum((0, 2))).long()  # which half of the inputs is busier


def train(rule):
    torch.manual_seed(1)
    net = ns.SNN(torch.nn.Linear(16, 64), ns.LIF(), torch.nn.Linear(64, 2), ns.LIF())
    if rule != "bp":
        rules.convert(net, rule, generator=torch.Generator().manual_seed(0))  # Linear -> BioLinear, in place
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    rules.attach(net, opt)  # per-step rule state (e.g. brsf redraws its feedback) after every optimizer step
    loss_fn = ns.losses.get_loss("rate_ce")
    for _ in range(15 if QUICK else 60):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()  # the rule decides what gradient reaches the layer below
        opt.step()
    with torch.no_grad():
        return float((net(x).sum(0).argmax(-1) == y).float().mean()), rules.rule_map(net)


for rule in ("bp", "fa", "usf"):
    acc, used = train(rule)
    print(f"  {rule:>3}: training accuracy {acc:.2f}  (layers: {used or 'plain backprop'})")
