r"""BioNAS search algorithms over (operation, learning rule) cells.

BioNAS-DARTS (:func:`darts_search`)
    First-order DARTS: alternate one Adam step on the architecture logits with the validation loss
    (:math:`\alpha \leftarrow \alpha - \eta_\alpha \nabla_\alpha L_{val}`) and one SGD step on the weights
    with the training loss (eq. 8-9 of the paper). The weight optimizer alone triggers
    :func:`neurosynth.rules.step`, so brSF redraws ``R`` once per weight step and never on the
    architecture pass. Gradients w.r.t. ``alpha`` flow through each candidate's own backward (FA/SF
    paths are approximate), as in the published method.

    Skip-connection collapse guard: (1) ``warmup`` epochs train only the weights before ``alpha`` moves
    (parameter-free skip is favoured while the convolutions are still untrained), (2) skip exists once per
    stride-1 edge instead of once per rule, and (3) the derived genotype keeps at most ``max_skip``
    skip edges per normal cell (P-DARTS): extra ones, weakest first, lose skip and are re-derived.

BioNAS-EG (:func:`eg_search`)
    EG-NAS with a real CMA-ES (pycma) on the flattened logits. Each epoch after ``warmup``: evaluate
    ``generations`` CMA generations on one validation batch with the compound fitness (minimised)

    .. math:: f(z) = \zeta\,CE(z) - \eta\,S(\alpha, z) \text{ if } Acc(\alpha) > Acc(z) \text{ else }
              \zeta\,CE(z) + \eta\,S(\alpha, z),

    where :math:`S` is the mean over edges of :math:`(\cos(p_\alpha, p_z) + 1)/2` of the masked softmax
    probabilities, then set :math:`\alpha \leftarrow m` (the CMA mean, i.e. :math:`\alpha_t = \alpha_{t-1}
    + s_t` with :math:`s_t` the recombined step, eq. 11/23), then train the weights for one epoch.
    Unlike the published EG-NAS code, one CMA-ES instance persists across epochs (mean, covariance,
    evolution paths, step size) and the epoch counter really advances: the step size follows CMA's own
    cumulative step-size adaptation, capped by the EG-NAS schedule :math:`\sigma_t \le \max(1/(t+1),
    \sigma_{min})`. pycma draws its samples from this search's ``numpy.random.Generator`` (option
    ``randn``), never from the global RNG.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from neurosynth import rules
from neurosynth.training import clamp_params_

from .data import ImageData, TensorLoader
from .space import CellSpace
from .supernet import SuperNet


def _supernet(space, data, C, layers, frame_rule, seed, g) -> SuperNet:
    with torch.random.fork_rng():  # weight init (and feedback buffers) from the search seed only
        torch.manual_seed(int(seed))
        return SuperNet(space, C=C, num_classes=data.num_classes, layers=layers, in_channels=data.input_shape[0],
                        frame_rule=frame_rule, generator=g)


def _batches(x, y, batch_size, generator):
    return TensorLoader(x, y, batch_size, shuffle=True, generator=generator)


def _epoch_log(net: SuperNet, loader, max_skip) -> dict:
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((net(x).argmax(1) == y).sum())
            total += len(y)
    net.train()
    ent, per_edge = {}, {}
    for c, p in net.probabilities().items():
        p = p.detach().clamp_min(1e-12)
        e = -(p * p.log()).sum(-1)
        ent[c] = float(e.mean())
        per_edge[c] = [float(v) for v in e]
    return {"val_accuracy": correct / max(total, 1), "alpha_entropy": ent, "alpha_entropy_per_edge": per_edge,
            "genotype": net.genotype(max_skip)}


def alpha_moved(history: list[dict], space: CellSpace, tol: float = 1e-3) -> bool:
    """Whether the architecture weights left the uniform distribution: some edge's entropy in the last epoch is
    below ``log(candidates on that edge) - tol``. A search that ends uniform derived its genotype by tie-breaking."""
    if not history:
        return False
    last = history[-1].get("alpha_entropy_per_edge") or {}
    for cell, edges in last.items():
        n = space.mask(cell).sum(axis=1)
        if any(v < math.log(max(int(k), 1)) - tol for v, k in zip(edges, n)):
            return True
    return False


BARELY_MOVED = 0.99  # every edge's entropy above this fraction of log(candidates): alpha is still ~uniform


def alpha_entropy_report(history: list[dict], space: CellSpace, probabilities: dict | None = None) -> dict:
    """How far the architecture weights moved, per cell and edge, from the per-epoch ``alpha_entropy_per_edge``.

    For every edge: the uniform entropy ``log(k)`` (``k`` candidates on the edge), the entropy after every epoch,
    and the final *normalised* entropy ``H / log(k)`` (1 = uniform, 0 = one-hot). ``verdict`` is ``"uniform"``
    (no edge below ``log(k) - 1e-3``: the genotype is a tie-break), ``"barely moved"`` (every edge still above
    ``BARELY_MOVED`` of its uniform entropy) or ``"moved"``. With ``probabilities`` (the final softmax), the
    top candidate's probability on every edge is added next to the uniform ``1/k``."""
    report: dict = {"epochs": [h["epoch"] for h in history],
                    "alpha_updates": [bool(h.get("alpha_updates", "sigma" in h)) for h in history], "cells": {}}
    norms = []
    for cell in space.cell_types:
        k = [int(v) for v in space.mask(cell).sum(axis=1)]
        uniform = [math.log(max(v, 1)) for v in k]
        per_epoch = [list(h.get("alpha_entropy_per_edge", {}).get(cell, [])) for h in history]
        last = per_epoch[-1] if per_epoch and per_epoch[-1] else uniform
        norm = [e / u if u > 0 else 0.0 for e, u in zip(last, uniform)]
        norms += norm
        entry = {"edges": [list(e) for e in space.edges], "candidates": k, "uniform_entropy": uniform,
                 "entropy_per_epoch": per_epoch, "final_normalised_entropy": norm,
                 "min_normalised_entropy": min(norm), "mean_normalised_entropy": sum(norm) / len(norm)}
        if probabilities is not None and cell in probabilities:
            p = np.asarray(probabilities[cell], dtype=float)
            entry["top_probability"] = [float(r.max()) for r in p]
            entry["uniform_probability"] = [1.0 / max(v, 1) for v in k]
        report["cells"][cell] = entry
    moved = alpha_moved(history, space)
    report["alpha_moved"] = moved
    report["min_normalised_entropy"] = min(norms) if norms else 1.0
    report["verdict"] = "uniform" if not moved else (
        "barely moved" if report["min_normalised_entropy"] > BARELY_MOVED else "moved")
    return report


def darts_search(space: CellSpace, data: ImageData, *, epochs: int = 10, C: int = 8, layers: int = 3,
                 batch_size: int = 64, w_lr: float = 0.025, w_lr_min: float = 0.001, a_lr: float = 3e-2,
                 warmup: int = 2, max_skip: int | None = 2, grad_clip: float = 5.0, seed: int = 0,
                 frame_rule: str = "bp", progress: bool = False, callback=None) -> dict:
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(int(seed))
    xa, ya, xb, yb = data.search_split(g)
    net = _supernet(space, data, C, layers, frame_rule, seed, g)
    w_params = net.weight_parameters()
    w_opt = torch.optim.SGD(w_params, lr=w_lr, momentum=0.9, weight_decay=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, max(epochs, 1), eta_min=w_lr_min)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=a_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    handle = rules.attach(net, w_opt)  # brSF / Hebbian state advances on weight steps only
    history = []
    bar = tqdm(range(epochs), desc="bionas-darts", disable=not progress)
    try:
        for ep in bar:
            net.train()
            tr = _batches(xa, ya, batch_size, g)
            va = _batches(xb, yb, batch_size, g)
            loss_sum = n = 0
            for (x, y), (xv, yv) in zip(tr, va):
                if ep >= warmup:
                    a_opt.zero_grad()
                    F.cross_entropy(net(xv), yv).backward()
                    a_opt.step()
                w_opt.zero_grad()
                for p in net.arch_parameters():
                    p.grad = None
                loss = F.cross_entropy(net(x), y)
                loss.backward()
                nn.utils.clip_grad_norm_(w_params, grad_clip)
                w_opt.step()
                clamp_params_(net)  # keep learnable neuron parameters in range
                loss_sum += float(loss.detach()) * len(y)
                n += len(y)
            sched.step()
            log = {"epoch": ep + 1, "train_loss": loss_sum / max(n, 1), "alpha_updates": ep >= warmup,
                   **_epoch_log(net, TensorLoader(xb, yb, 256), max_skip)}
            history.append(log)
            bar.set_postfix(loss=f"{log['train_loss']:.3f}", val=f"{log['val_accuracy']:.3f}")
            if callback is not None:
                callback(log)
    finally:
        handle.remove()
    return {"method": "darts", "genotype": net.genotype(max_skip), "history": history,
            "logits": {c: a.tolist() for c, a in net.logits().items()},
            "probabilities": {c: p.detach().tolist() for c, p in net.probabilities().items()}}


def compound_fitness(ce: float, sim: float, acc_ref: float, acc_cand: float, zeta: float = 1.0,
                     eta: float = 0.4) -> float:
    """EG-NAS compound fitness (minimised): reward diversity when the candidate is at least as accurate."""
    return zeta * ce - eta * sim if acc_ref > acc_cand else zeta * ce + eta * sim


def edge_similarity(p_ref: dict, p_cand: dict) -> float:
    """Mean over all edges of ``(cos(p_ref_e, p_cand_e) + 1) / 2``."""
    sims = [F.cosine_similarity(p_ref[c], p_cand[c], dim=-1) for c in p_ref]
    return float(((torch.cat(sims) + 1) / 2).mean())


class EGExplorer:
    """The persistent CMA-ES of BioNAS-EG over the flattened architecture logits: a thin driver of the engine
    strategy :class:`~snn_nas.strategies.cma.CMAESLogits` (``STRATEGIES["eg_cma"]``), one ``ask``/``tell``
    round per generation."""

    def __init__(self, x0: np.ndarray, rng: np.random.Generator, *, sigma0: float, popsize: int | None = None):
        from ..strategies.cma import CMAESLogits
        from .engine_space import LogitSpace

        x0 = np.asarray(x0, dtype=np.float64)
        self.strategy = CMAESLogits(LogitSpace(x0.size), rng, x0=x0, sigma0=sigma0, popsize=popsize)

    @property
    def es(self):
        return self.strategy.es

    @property
    def sigma(self) -> float:
        return self.strategy.sigma

    def cap_sigma(self, cap: float) -> None:
        self.strategy.cap_sigma(cap)

    def generation(self, fitness) -> tuple[np.ndarray, float, list]:
        """One ask/tell round; ``fitness`` is minimised (the engine maximises ``-fitness``)."""
        specs = self.strategy.ask(self.strategy.popsize)
        f = [float(fitness(np.asarray(s["z"]))) for s in specs]
        self.strategy.tell(specs, [{"fitness": -v} for v in f])
        k = int(np.argmin(f))
        return np.asarray(specs[k]["z"]), f[k], f

    @property
    def mean(self) -> np.ndarray:
        return self.strategy.mean


def eg_search(space: CellSpace, data: ImageData, *, epochs: int = 10, C: int = 8, layers: int = 3,
              batch_size: int = 64, w_lr: float = 0.025, w_lr_min: float = 0.001, warmup: int = 2,
              generations: int = 2, popsize: int | None = None, sigma_min: float = 0.02, zeta: float = 1.0,
              eta: float = 0.4, eval_batch: int = 128, max_skip: int | None = 2, grad_clip: float = 5.0,
              seed: int = 0, frame_rule: str = "bp", progress: bool = False, callback=None) -> dict:
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    xa, ya, xb, yb = data.search_split(g)
    net = _supernet(space, data, C, layers, frame_rule, seed, g)
    for p in net.arch_parameters():
        p.requires_grad_(False)  # alpha is evolved, never trained by SGD
    w_params = net.weight_parameters()
    w_opt = torch.optim.SGD(w_params, lr=w_lr, momentum=0.9, weight_decay=3e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, max(epochs, 1), eta_min=w_lr_min)
    handle = rules.attach(net, w_opt)
    shapes = [(c, net.alphas[c].shape) for c in space.cell_types]
    explorer: EGExplorer | None = None

    def flat() -> np.ndarray:
        return np.concatenate([net.alphas[c].detach().double().numpy().ravel() for c, _ in shapes])

    def unflat(v: np.ndarray) -> dict:
        out, k = {}, 0
        for c, shp in shapes:
            n = int(np.prod(shp))
            out[c] = torch.as_tensor(v[k:k + n], dtype=torch.float32).reshape(shp)
            k += n
        return out

    history = []
    bar = tqdm(range(epochs), desc="bionas-eg", disable=not progress)
    try:
        for ep in bar:
            log = {"epoch": ep + 1}
            if ep >= warmup:
                sched_sigma = max(1.0 / (ep + 1), sigma_min)
                if explorer is None:
                    explorer = EGExplorer(flat(), rng, sigma0=sched_sigma, popsize=popsize)
                explorer.cap_sigma(sched_sigma)
                idx = torch.from_numpy(rng.choice(len(yb), size=min(eval_batch, len(yb)), replace=False))
                xv, yv = xb[idx], yb[idx]
                net.train()
                with torch.no_grad():
                    p_ref = net.probabilities()
                    acc_ref = float((net(xv, p_ref).argmax(1) == yv).float().mean())

                    def fitness(z, xv=xv, yv=yv, p_ref=p_ref, acc_ref=acc_ref):
                        p = net.probabilities(unflat(z))
                        out = net(xv, p)
                        ce = float(F.cross_entropy(out, yv))
                        acc = float((out.argmax(1) == yv).float().mean())
                        return compound_fitness(ce, edge_similarity(p_ref, p), acc_ref, acc, zeta, eta)

                    fits = []
                    for _ in range(generations):
                        _, fbest, f = explorer.generation(fitness)
                        fits.append(fbest)
                    new = unflat(explorer.mean)
                    for c, _ in shapes:
                        net.alphas[c].copy_(new[c])
                log.update({"sigma": explorer.sigma, "sigma_cap": sched_sigma, "best_fitness": fits,
                            "ref_batch_accuracy": acc_ref})
            net.train()
            loss_sum = n = 0
            for x, y in _batches(xa, ya, batch_size, g):
                w_opt.zero_grad()
                loss = F.cross_entropy(net(x), y)
                loss.backward()
                nn.utils.clip_grad_norm_(w_params, grad_clip)
                w_opt.step()
                clamp_params_(net)  # keep learnable neuron parameters in range
                loss_sum += float(loss.detach()) * len(y)
                n += len(y)
            sched.step()
            log.update({"train_loss": loss_sum / max(n, 1), **_epoch_log(net, TensorLoader(xb, yb, 256), max_skip)})
            history.append(log)
            bar.set_postfix(loss=f"{log['train_loss']:.3f}", val=f"{log['val_accuracy']:.3f}",
                            sigma=f"{log.get('sigma', math.nan):.3f}")
            if callback is not None:
                callback(log)
    finally:
        handle.remove()
    return {"method": "eg", "genotype": net.genotype(max_skip), "history": history,
            "logits": {c: a.tolist() for c, a in net.logits().items()},
            "probabilities": {c: p.detach().tolist() for c, p in net.probabilities().items()},
            "cma": None if explorer is None else {"sigma": explorer.sigma, "iterations": int(explorer.es.countiter),
                                                   "evaluations": int(explorer.es.countevals)}}
