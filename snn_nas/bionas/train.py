"""Training and evaluation of (derived) BioNAS image classifiers, with per-epoch gradient variance.

Gradient variance (the paper's Fig. 3): for each epoch, the weight gradients of all mini-batches are
flattened into one vector ``g_t`` per step; the logged value is
:math:`\\frac{1}{P}\\sum_p \\mathrm{Var}_t[g_{t,p}]`, the across-step variance averaged over the ``P``
weights (Welford-free: running sums of ``g`` and ``g^2`` in float64).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from neurosynth import rules
from neurosynth.training import clamp_params_

from .data import TensorLoader


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> dict:
    was = model.training
    model.eval()
    correct = total = 0
    loss = 0.0
    for x, y in loader:
        out = model(x)
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        total += len(y)
    model.train(was)
    return {"loss": loss / max(total, 1), "accuracy": correct / max(total, 1)}


class GradStats:
    """Running mean/variance of the flattened weight gradient across optimizer steps."""

    def __init__(self, params):
        self.params = [p for p in params if p.requires_grad]
        self.reset()

    def reset(self):
        self.n = 0
        self.s1 = None
        self.s2 = None

    def update(self):
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().double()
                       for p in self.params])
        if self.s1 is None:
            self.s1, self.s2 = torch.zeros_like(g), torch.zeros_like(g)
        self.s1 += g
        self.s2 += g * g
        self.n += 1

    def variance(self) -> float:
        if self.n < 2:
            return math.nan
        mean = self.s1 / self.n
        var = (self.s2 / self.n - mean * mean).clamp_min(0) * self.n / (self.n - 1)
        return float(var.mean())


def train_model(model: nn.Module, x_train, y_train, x_test, y_test, *, epochs: int = 10, batch_size: int = 64,
                lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                seed: int = 0, progress: bool = False, desc: str = "train", test_every: int = 1) -> dict:
    """SGD + cosine schedule (DARTS' evaluation recipe, shortened). Returns the per-epoch history.

    The test set is evaluated every ``test_every`` epochs and always after the last one (other epochs get
    ``nan`` test entries), so a large test set need not be scored after every epoch.

    :func:`neurosynth.rules.attach` ties brSF redraws and Hebbian updates to optimizer steps.
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if test_every < 1:
        raise ValueError(f"test_every must be >= 1, got {test_every}")
    g = torch.Generator().manual_seed(int(seed))
    train = TensorLoader(x_train, y_train, batch_size, shuffle=True, generator=g)
    test = TensorLoader(x_test, y_test, 256)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    handle = rules.attach(model, opt)
    stats = GradStats(params)
    hist = {"epoch": [], "train_loss": [], "train_accuracy": [], "test_loss": [], "test_accuracy": [],
            "grad_variance": [], "grad_norm": []}
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    try:
        for ep in bar:
            model.train()
            stats.reset()
            tot = correct = 0
            loss_sum = norm_sum = 0.0
            for x, y in train:
                opt.zero_grad(set_to_none=False)
                out = model(x)
                loss = F.cross_entropy(out, y)
                loss.backward()
                stats.update()
                norm_sum += float(nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else float("inf")))
                opt.step()
                clamp_params_(model)  # keep learnable neuron parameters in range
                loss_sum += float(loss.detach()) * len(y)
                correct += int((out.argmax(1) == y).sum())
                tot += len(y)
            sched.step()
            last = ep + 1 == epochs
            ev = evaluate(model, test) if last or (ep + 1) % test_every == 0 else {"loss": math.nan,
                                                                                   "accuracy": math.nan}
            hist["epoch"].append(ep + 1)
            hist["train_loss"].append(loss_sum / tot)
            hist["train_accuracy"].append(correct / tot)
            hist["test_loss"].append(ev["loss"])
            hist["test_accuracy"].append(ev["accuracy"])
            hist["grad_variance"].append(stats.variance())
            hist["grad_norm"].append(norm_sum / max(len(train), 1))
            bar.set_postfix(loss=f"{loss_sum / tot:.3f}", test=f"{ev['accuracy']:.3f}")
    finally:
        handle.remove()
    return hist
