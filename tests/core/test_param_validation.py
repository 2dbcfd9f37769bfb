"""Parameter and input checks: clear ValueErrors instead of silent zeros or raw torch errors (issue 13)."""

import math

import pytest
import torch

from neurosynth.arch import build, mlp_spec
from neurosynth.neurons import ALIF, IF, LI, LIF, CubaLIF, NeuronModel, register_neuron
from neurosynth.training import clamp_params_, evaluate, fit


@pytest.mark.parametrize("make, needle", [
    (lambda: LIF(beta=math.nan), "LIF: beta must be finite"),
    (lambda: LIF(beta=1.2), r"LIF: beta must lie in \[0, 1\]"),
    (lambda: LIF(threshold=0.0), r"LIF: threshold must lie in \(0, inf\)"),
    (lambda: LIF(threshold=-1.0), "threshold must lie in"),
    (lambda: LIF(threshold=math.inf), "threshold must be finite"),
    (lambda: LIF(beta=[0.5, math.nan], shape=2), "1 non-finite"),
    (lambda: IF(threshold=0.0), "IF: threshold"),
    (lambda: LI(beta=3.0), r"LI: beta must lie in \[0, 1\]"),
    (lambda: CubaLIF(alpha=1.5), r"CubaLIF: alpha must lie in \[0, 1\]"),
    (lambda: CubaLIF(beta=-0.1), "CubaLIF: beta"),
    (lambda: ALIF(beta=2.0), "ALIF: beta"),
    (lambda: ALIF(adapt_decay=1.5), "ALIF: adapt_decay"),
    (lambda: ALIF(adapt_scale=-1.0), "ALIF: adapt_scale"),
    (lambda: LIF(learn=True), "learn= takes the names of the parameters"),
    (lambda: LIF(learn=1), "learn= takes a list of parameter names"),
])
def test_neuron_parameters_are_validated(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_learn_accepts_a_single_name():
    assert LIF(learn="beta").learn == ("beta",)


def test_custom_neuron_ranges_are_checked_and_projected():
    @register_neuron("test_ranged_neuron")
    class Ranged(NeuronModel):
        defaults = {"beta": 0.9, "threshold": 1.0, "k": 0.5}
        param_ranges = {**NeuronModel.param_ranges, "k": (0.0, 1.0, False)}

        def charge(self, x, state, p):
            return state._replace(v=p.beta * state.v + p.k * x)

    with pytest.raises(ValueError, match=r"k must lie in \[0, 1\]"):
        Ranged(k=2.0)
    n = Ranged(learn=("k", "beta", "threshold"), shape=3)
    with torch.no_grad():
        n.k.copy_(torch.tensor([-1.0, 0.5, 7.0]))
        n.beta.copy_(torch.tensor([1.5, math.nan, 0.3]))
        n.threshold.copy_(torch.tensor([-2.0, 0.0, 2.0]))
    clamp_params_(torch.nn.Sequential(n))
    assert n.k.tolist() == [0.0, 0.5, 1.0]
    assert n.beta.tolist()[0] == 1.0 and n.beta.tolist()[2] == pytest.approx(0.3) and 0 <= n.beta.tolist()[1] <= 1
    assert all(t > 0 for t in n.threshold.tolist()) and n.threshold.tolist()[2] == 2.0
    n._validate()  # back in range


def test_bad_inputs_are_clear_value_errors():
    net = build(mlp_spec(8, [4], 2))
    with pytest.raises(ValueError, match=r"at least one time step \(T >= 1\)"):
        net(torch.zeros(0, 3, 8))
    with pytest.raises(ValueError, match="SNN input has 5 features .* the first Linear layer expects 8"):
        net(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="at least one time step"):
        LIF()(torch.zeros(0, 2, 3))


def test_fit_and_evaluate_refuse_an_empty_loader():
    net = build(mlp_spec(8, [4], 2))
    with pytest.raises(ValueError, match="fit: the train loader yielded no batches"):
        fit(net, [], epochs=1, progress=False)
    with pytest.raises(ValueError, match="evaluate: the loader yielded no batches"):
        evaluate(net, [])


def test_nan_is_attributed_to_the_data_or_to_the_weights():
    net = build(mlp_spec(8, [4], 2))
    y = torch.zeros(3, dtype=torch.long)
    bad_x = torch.zeros(2, 3, 8)
    bad_x[0, 0, 0] = math.nan
    with pytest.raises(FloatingPointError, match="the input data contains NaN"):
        fit(net, [(bad_x, y)], epochs=1, progress=False)
    with torch.no_grad():
        net[0].weight[0, 0] = math.nan
    with pytest.raises(FloatingPointError, match=r"weights/parameters became non-finite \(0.weight\); the data is finite"):
        fit(net, [(torch.ones(2, 3, 8), y)], epochs=1, progress=False)
