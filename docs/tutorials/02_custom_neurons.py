r"""Lesson 2: custom neurons with several state variables (an Izhikevich neuron and a refractory LIF).

Run it: ``python docs/tutorials/02_custom_neurons.py`` (seconds).

A neuron is a subclass of :class:`neurosynth.neurons.NeuronModel`. The base class runs one time step as

    state = charge(x, state, p)                # integrate the input; state.v is now the pre-spike membrane h
    s     = spike(state.v - threshold_of(state, p))   # Heaviside forward, surrogate gradient backward
    state = state._replace(v=reset(state.v, s))       # reset: "subtract" | "zero" | "none"
    state = after_fire(s, state, p)            # anything else that happens on a spike

What you define:

- ``defaults: dict[str, float]``: the parameters and their default values. They become buffers (or
  ``nn.Parameter`` with ``learn=("name",)``) and reach the methods as ``p.<name>`` (``p`` is a frozen dataclass).
- ``state_vars: tuple[str, ...]``: the state variables, default ``("v",)``. ``v`` must be one of them: it is the
  membrane that is compared with the threshold. The state is a NamedTuple with these fields; replace fields
  with ``state._replace(v=...)`` (the step is pure: never modify tensors in place).
- ``charge(self, x, state, p) -> state`` (required): ``x`` is one time step of input ``[B, ...]``.
- ``threshold_of(self, state, p) -> Tensor`` (optional, default ``p.threshold``): e.g. adaptive thresholds.
- ``after_fire(self, s, state, p) -> state`` (optional, default: unchanged): ``s`` is the spike tensor (0/1
  forward, surrogate gradient backward); runs after the reset.
- ``initial_state(self, x0) -> State`` (optional, default all zeros shaped like ``x0 [B, ...]``): e.g. a
  resting potential that is not 0.
- ``default_reset`` (class attribute, default ``"subtract"``) and ``_validate(self)`` to check parameter ranges.

``@register_neuron("name")`` makes it buildable by name everywhere: ArchSpec JSON, ``build_neuron``, and the
command line once the file (or module) that registers it is passed with ``--plugin``, on any command::

    neurosynth train --plugin examples/custom_neuron.py --neuron quadratic_lif --out runs/tutorials/02_cli
    neurosynth search mse --plugin examples/custom_neuron.py --space space.json ...   # {"neurons": ["quadratic_lif"]}
    neurosynth export nir --plugin examples/custom_neuron.py --model runs/tutorials/02_cli --out net.nir

(a plugin file should only define and register: the command imports it; installed packages declare theirs under
the ``neurosynth.neurons`` entry-point group instead). The run records the plugin in ``arch.json``; opening it
never imports code on its own, so ``energy``/``export``/``robustness`` without the ``--plugin`` are refused with the
exact option to pass. ``export nir`` maps a custom neuron onto a NIR primitive only where the class declares its
dynamics equal one (``nir_primitive = "lif"``, ``"if"``, ``"cubalif"`` or ``"li"``); otherwise it refuses, saying
why. ``load_run`` in Python works once the module is imported. Section 4 below runs the first command.
"""

import os
from pathlib import Path

import torch

import neurosynth as ns
from neurosynth.neurons import NeuronModel, build_neuron, register_neuron

QUICK = os.environ.get("NEUROSYNTH_TUTORIAL_QUICK") == "1"
OUT = Path(os.environ.get("NEUROSYNTH_TUTORIAL_OUT", "runs/tutorials")) / "02_custom_neurons"


@register_neuron("izhikevich")
class Izhikevich(NeuronModel):
    """Izhikevich (2003): v' = 0.04 v^2 + 5 v + 140 - u + I, u' = a (b v - u); on v > 30 mV: v <- c, u <- u + d.

    Two state variables (v, u), a resting state that is not zero, and a spike that changes u: every hook is
    used. Euler steps of ``dt`` ms; the input is a current in the model's units.
    """

    defaults = {"a": 0.02, "b": 0.2, "c": -65.0, "d": 8.0, "threshold": 30.0, "dt": 0.5}
    state_vars = ("v", "u")
    default_reset = "none"  # after_fire sets v to c itself

    def initial_state(self, x0):
        v = torch.full_like(x0, float(self.c.mean()))
        return self.State(v=v, u=self.b.mean() * v)

    def charge(self, x, state, p):
        v, u = state.v, state.u
        v = v + p.dt * (0.04 * v * v + 5 * v + 140 - u + x)
        u = u + p.dt * p.a * (p.b * v - u)
        return state._replace(v=v, u=u)

    def after_fire(self, s, state, p):
        return state._replace(v=state.v + s * (p.c - state.v), u=state.u + s * p.d)

    def _validate(self):
        if float(self.dt.min()) <= 0:
            raise ValueError("dt must be > 0")


@register_neuron("refractory_lif")
class RefractoryLIF(NeuronModel):
    """A LIF neuron that ignores its input for ``t_ref`` steps after each spike.

    State: ``v`` (membrane) and ``ref`` (steps of refractoriness left).
    """

    defaults = {"beta": 0.9, "threshold": 1.0, "t_ref": 2.0}
    state_vars = ("v", "ref")
    default_reset = "zero"

    def charge(self, x, state, p):
        open_ = (state.ref <= 0).to(x.dtype)  # 1 where the neuron listens
        return state._replace(v=p.beta * state.v + open_ * x, ref=(state.ref - 1).clamp_min(0))

    def after_fire(self, s, state, p):
        return state._replace(ref=state.ref + s.detach() * (p.t_ref - state.ref))


# --- 1. Izhikevich: regular spiking vs fast spiking under the same current step -----------------------------
T = 400 if QUICK else 1000  # steps of 0.5 ms
current = torch.zeros(T, 2, 1)
current[T // 10:] = 10.0
rs = Izhikevich()  # regular spiking (defaults)
fs = Izhikevich(a=0.1, d=2.0)  # fast spiking
with torch.no_grad():
    spikes_rs, _, v_rs = rs.run(current)
    spikes_fs = fs(current)
n_rs, n_fs = int(spikes_rs[:, 0].sum()), int(spikes_fs[:, 0].sum())
print(f"Izhikevich spikes in {T * 0.5:.0f} ms: regular spiking {n_rs}, fast spiking {n_fs}")
assert 0 < n_rs < n_fs

from neurosynth.plots import figure, finish  # noqa: E402

fig, ax = figure(figsize=(7, 2.6))
ax.plot(torch.arange(T) * 0.5, v_rs[:, 0, 0].numpy(), lw=0.8)  # trace = pre-reset membrane
ax.set_xlabel("time (ms)")
ax.set_ylabel("v (mV)")
ax.set_title("Izhikevich, regular spiking, 10 units of current from 10% of the run on")
finish(fig, OUT / "izhikevich.png")

# --- 2. Refractory LIF: the refractory period caps the firing rate -------------------------------------------
strong = torch.full((48, 1, 3), 5.0)  # far above threshold: without refractoriness it fires every step
rates = {t_ref: float(RefractoryLIF(t_ref=t_ref)(strong).mean()) for t_ref in (0.0, 1.0, 3.0)}
print("refractory LIF firing rate per t_ref:", rates)
assert rates[0.0] == 1.0 and rates[1.0] == 0.5 and rates[3.0] == 0.25

# --- 3. Use them like any neuron: in an SNN, trained by backprop, rebuilt by name ------------------------------
torch.manual_seed(0)
net = ns.SNN(torch.nn.Linear(20, 32), build_neuron("refractory_lif", t_ref=1.0), torch.nn.Linear(32, 2), ns.LIF())
x = (torch.rand(10, 16, 20) < 0.3).float()
y = (x[:, :, :10].sum((0, 2)) > x[:, :, 10:].sum((0, 2))).long()  # which half of the inputs is busier
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
loss_fn = ns.losses.get_loss("rate_ce")
for _ in range(5 if QUICK else 30):
    loss = loss_fn(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print("loss after training:", round(loss.item(), 3))
spec = ns.to_spec(net, input_shape=[20])
print("its ArchSpec entry:", spec["layers"][1])
rebuilt = ns.build(spec)  # the registered name rebuilds it
rebuilt.load_state_dict(net.state_dict())
with torch.no_grad():
    assert torch.equal(rebuilt(x), net(x))

# --- 4. The same from the command line: --plugin imports the file that registers the neuron -----------------------
from neurosynth.apps.cli import main as neurosynth_cli  # noqa: E402

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "custom_neuron.py"
cli_run = OUT / "02_cli"
rc = neurosynth_cli(["train", "--plugin", str(PLUGIN), "--neuron", "quadratic_lif", "--out", str(cli_run),
                     "--epochs", "1" if QUICK else "5", "--T", "8", "--hidden", "32" if QUICK else "128",
                     "--no-progress"])
assert rc == 0
import json  # noqa: E402

print("the run records its plugin:", json.loads((cli_run / "arch.json").read_text())["neuron_plugins"])
