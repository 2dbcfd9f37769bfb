"""Unsupervised STDP feature learning with a winner-take-all network, Diehl & Cook (2015) style.

Network: 64 Poisson (Bernoulli-rate) inputs -> ``n_neurons`` excitatory neurons with hard winner-take-all
(the limit of strong lateral inhibition), adaptive thresholds (homeostasis) and per-neuron weight
normalisation. Weights learn by pair STDP with soft bounds (:func:`~neurosynth.plasticity.stdp_step`),
with no labels. Afterwards each neuron is assigned the class it responds to most on the training set, and a
test digit is classified by the class whose assigned neurons spike most (Diehl & Cook's readout).

The digits recipe that trains it and writes a run directory (``neurosynth train --method stdp``) is
:func:`neurosynth.apps.recipes.stdp_digits.train_stdp_digits`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .connections import Dense
from .schedule import LRSchedule, lr_at
from .stdp import STDPParams, apply_update, stdp_init, stdp_step
from .unsupervised import (
    HomeostasisParams,
    LIFWTAParams,
    adaptive_threshold_step,
    lif_wta_init,
    lif_wta_step,
    normalize_weights,
)

FORMAT_KIND = "stdp_wta"


@dataclass(frozen=True)
class DigitsSTDPConfig:
    n_neurons: int = 100
    T: int = 40  # time steps per presentation (training and inference)
    rate: float = 0.25  # spike probability per step of a fully-on pixel
    batch_size: int = 16
    a_plus: float = 0.05
    a_minus: float = 0.005
    tau_plus: float = 10.0
    tau_minus: float = 10.0
    lr: float = 1.0
    lr_final: float = 0.1  # linear decay of the STDP learning rate over training
    w_sum: float = 12.0  # per-neuron sum of incoming weights after normalisation
    beta: float = 0.95
    threshold: float = 1.0
    refractory: int = 2
    theta_plus: float = 0.05
    tau_theta: float = 1e5
    test_size: float = 0.25
    wta_reset: str = "all"  # "all": a winner's spike resets the whole layer (strong inhibition) | "zero"
    reduce: str = "sum"  # batch reduction of the STDP update ("sum": every sample's winner learns fully)

    def __post_init__(self) -> None:
        if self.n_neurons < 10 or self.T < 1 or self.batch_size < 1 or not 0 < self.rate <= 1:
            raise ValueError("need n_neurons >= 10, T >= 1, batch_size >= 1 and 0 < rate <= 1")


class STDPWTANet(nn.Module):
    """The learned network: weights ``w [N, 64]``, threshold offsets ``theta [N]``, neuron labels ``assignments [N]``.

    ``forward(x [T, B, 64] spikes) -> spike counts [B, N]``; :meth:`predict` -> class per sample.
    """

    def __init__(self, n_in: int = 64, n_neurons: int = 100, n_classes: int = 10, beta: float = 0.95,
                 threshold: float = 1.0, refractory: int = 2, wta_reset: str = "all"):
        super().__init__()
        self.register_buffer("w", torch.zeros(n_neurons, n_in))
        self.register_buffer("theta", torch.zeros(n_neurons))
        self.register_buffer("assignments", torch.zeros(n_neurons, dtype=torch.long))
        self.n_in, self.n_neurons, self.n_classes = n_in, n_neurons, n_classes
        self.neuron = LIFWTAParams(beta=beta, threshold=threshold, refractory=refractory, reset=wta_reset)

    def forward(self, x: Tensor) -> Tensor:
        state = lif_wta_init(x.shape[1], self.n_neurons, x.dtype, x.device)
        counts = torch.zeros(x.shape[1], self.n_neurons, dtype=x.dtype, device=x.device)
        for t in range(x.shape[0]):
            s, state = lif_wta_step(x[t] @ self.w.T, state, self.theta, self.neuron)
            counts += s
        return counts

    def predict(self, x: Tensor) -> Tensor:
        return classify(self(x), self.assignments, self.n_classes)

    def to_spec(self) -> dict:
        return {"format": "neurosynth.arch/1", "kind": FORMAT_KIND, "plugin": "neurosynth.plasticity.wta",
                "n_in": self.n_in, "n_neurons": self.n_neurons, "n_classes": self.n_classes,
                "neuron": asdict(self.neuron)}


def _build_from_spec(spec: dict) -> STDPWTANet:
    n = spec.get("neuron", {})
    return STDPWTANet(int(spec["n_in"]), int(spec["n_neurons"]), int(spec.get("n_classes", 10)),
                      beta=float(n.get("beta", 0.95)), threshold=float(n.get("threshold", 1.0)),
                      refractory=int(n.get("refractory", 2)), wta_reset=str(n.get("reset", "all")))


try:  # make run directories of this model loadable with neurosynth.rundir.load_run
    from ..arch import ARCH_KINDS

    if FORMAT_KIND not in ARCH_KINDS:
        ARCH_KINDS.add(FORMAT_KIND, _build_from_spec)
except ImportError:  # pragma: no cover - core without arch
    pass


def assign_labels(counts: Tensor, labels: Tensor, n_classes: int = 10) -> Tensor:
    """Neuron -> class with the highest mean response over the samples of that class (Diehl & Cook)."""
    mean = torch.stack([counts[labels == c].mean(0) if bool((labels == c).any()) else
                        torch.zeros(counts.shape[1]) for c in range(n_classes)])  # [C, N]
    return mean.argmax(0)


def classify(counts: Tensor, assignments: Tensor, n_classes: int = 10) -> Tensor:
    """Class whose assigned neurons have the highest mean spike count (classes without neurons score -1)."""
    scores = torch.full((counts.shape[0], n_classes), -1.0)
    for c in range(n_classes):
        m = assignments == c
        if bool(m.any()):
            scores[:, c] = counts[:, m].mean(1)
    return scores.argmax(1)


def _encode(x: Tensor, T: int, rate: float, g: torch.Generator) -> Tensor:
    from ..encoding import encode

    return encode("rate", x, T, generator=g, gain=rate)


def fit_stdp(x: Tensor, cfg: DigitsSTDPConfig, epochs: int, generator: torch.Generator,
             progress: bool = False) -> tuple[STDPWTANet, dict]:
    """Unsupervised training on ``x [N, 64]`` in [0, 1]; returns the net (assignments unset) and a history."""
    net = STDPWTANet(x.shape[1], cfg.n_neurons, beta=cfg.beta, threshold=cfg.threshold, refractory=cfg.refractory,
                     wta_reset=cfg.wta_reset)
    w = torch.rand(cfg.n_neurons, x.shape[1], generator=generator) * 0.3 + 0.1
    w = normalize_weights(w, cfg.w_sum)
    theta = torch.zeros(cfg.n_neurons)
    stdp = STDPParams(a_plus=cfg.a_plus, a_minus=cfg.a_minus, tau_plus=cfg.tau_plus, tau_minus=cfg.tau_minus,
                      w_min=0.0, w_max=1.0, weight_dependence="multiplicative")
    homeo = HomeostasisParams(theta_plus=cfg.theta_plus, tau_theta=cfg.tau_theta)
    n_batches = (len(x) + cfg.batch_size - 1) // cfg.batch_size
    sched = LRSchedule("linear", lr=cfg.lr, lr_final=cfg.lr_final, total_steps=max(1, epochs * n_batches))
    conn = Dense(cfg.reduce)
    history: dict[str, list] = {"spikes_per_sample": [], "theta_mean": []}
    step = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * n_batches, desc="stdp", unit="batch")
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator)
        total_spikes = 0.0
        for i in range(0, len(x), cfg.batch_size):
            xb = x[perm[i:i + cfg.batch_size]]
            s_in = _encode(xb, cfg.T, cfg.rate, generator)
            state = lif_wta_init(len(xb), cfg.n_neurons)
            tr = stdp_init(s_in[0], state.v)
            lr = lr_at(sched, step)
            for t in range(cfg.T):
                s, state = lif_wta_step(s_in[t] @ w.T, state, theta, net.neuron)
                dw, tr = stdp_step(s_in[t], s, tr, w, stdp, conn)
                if bool(s.any()) or cfg.a_minus > 0:
                    w = normalize_weights(apply_update(w, dw, lr, stdp), cfg.w_sum).clamp(0.0, 1.0)
                theta = adaptive_threshold_step(theta, s, homeo, batch_reduce="sum")
                total_spikes += float(s.sum())
            step += 1
            if bar is not None:
                bar.update(1)
        history["spikes_per_sample"].append(total_spikes / len(x))
        history["theta_mean"].append(float(theta.mean()))
    if bar is not None:
        bar.close()
    net.w.copy_(w)
    net.theta.copy_(theta)
    return net, history


@torch.no_grad()
def spike_counts(net: STDPWTANet, x: Tensor, cfg: DigitsSTDPConfig, generator: torch.Generator,
                 batch_size: int = 256, min_spikes: int = 5, max_boosts: int = 3) -> Tensor:
    """Spike counts ``[N, n_neurons]``. As in Diehl & Cook, samples with fewer than ``min_spikes`` spikes are
    presented again with the input rate doubled (at most ``max_boosts`` times)."""
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        c = net(_encode(xb, cfg.T, cfg.rate, generator))
        rate = cfg.rate
        for _ in range(max_boosts):
            low = c.sum(1) < min_spikes
            if not bool(low.any()) or rate >= 1.0:
                break
            rate = min(1.0, 2 * rate)
            c[low] = net(_encode(xb[low], cfg.T, rate, generator))
        out.append(c)
    return torch.cat(out)
