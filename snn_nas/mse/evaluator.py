"""MSE-NAS evaluators (they never search): the training-free RDM fitness, a short-training reference, and the
budget-aware trainer of the multi-fidelity search (``mse_budget``: validation accuracy at ``Budget(epochs, images)``).

Both build the candidate with weights initialised from the candidate seed only
(``torch.random.fork_rng`` + ``manual_seed``: the caller's global RNG state is untouched), so serial,
multi-process and Ray evaluations agree.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch

from ..engine.evaluator import EVALUATORS, Evaluator
from .fitness import FITNESSES


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's global RNG seeded to ``seed``, restoring the previous state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def build_seeded(spec: dict, seed: int):
    from neurosynth.arch import build

    with seeded(seed):
        return build(spec)


@contextlib.contextmanager
def synops_counter(model):
    """Count synaptic operations while the block runs: for every Conv2d / Linear, the number of non-zero
    input elements times the synapses each drives (``out_channels * k_h * k_w / groups`` or
    ``out_features``) -- SpikingJelly-style counting of accumulate operations. Yields a one-element list
    holding the running total."""
    total = [0.0]

    def hook(m, inp, out):
        nz = float((inp[0] != 0).sum())
        if isinstance(m, torch.nn.Conv2d):
            fan = m.out_channels * m.kernel_size[0] * m.kernel_size[1] / m.groups
        else:
            fan = m.out_features
        total[0] += nz * fan

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        yield total
    finally:
        for h in hs:
            h.remove()


def count_synops(model, x: torch.Tensor) -> float:
    """Synaptic operations per sample for input ``x [T, B, ...]`` (see :func:`synops_counter`)."""
    with synops_counter(model) as total, torch.no_grad():
        model(x)
    return total[0] / x.shape[1]


def readout_layer(model):
    """The linear readout: ``model.head`` (MSENet), else the last ``nn.Linear`` of the model (a sequential
    ``SNN``, e.g. a lowered Loihi/NIR candidate, whose readout reads the last hidden layer's spikes)."""
    head = getattr(model, "head", None)
    if head is not None:
        return head
    lin = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return lin[-1] if lin else None


def forward_recorded(model, x: torch.Tensor):
    """``(out, records)``: the output and every spiking layer's spike train ``[T, B, ...]``.

    An :class:`~snn_nas.mse.builder.MSENet` records itself; any other model (a sequential ``SNN``) is
    recorded through forward hooks on its spiking neuron modules (the output layer excluded, as MSENet's
    readout is)."""
    if getattr(model, "records_spikes", False):
        return model(x, record=True)
    from neurosynth.neurons import NeuronModel

    neurons = [(n, m) for n, m in model.named_modules() if isinstance(m, NeuronModel)
               and getattr(type(m), "spiking", True)]
    neurons = neurons[:-1] if len(neurons) > 1 else neurons
    records: dict[str, torch.Tensor] = {}
    hooks = []
    for name, m in neurons:
        def hook(mod, inp, out, name=name):
            records[name] = out.detach()
        hooks.append(m.register_forward_hook(hook))
    try:
        out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, records


class readout_input:  # noqa: N801 (a context manager used like a function)
    """Record the input of the linear readout (:func:`readout_layer`) as ``[T, B, W]`` in ``.value``."""

    def __init__(self, model, x: torch.Tensor):
        self.model, self.T, self.B, self.value, self._h = model, int(x.shape[0]), int(x.shape[1]), None, None

    def _hook(self, mod, inp, out):
        self.value = inp[0].detach().reshape(self.T, self.B, -1)

    def __enter__(self):
        head = readout_layer(self.model)
        if head is not None:
            self._h = head.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        if self._h is not None:
            self._h.remove()
        return False


COSTS = ("params", "synops", "loihi_cores", "loihi_synapse_bytes")


def target_metrics(spec: dict) -> dict:
    """The target's resource estimate of a deployable candidate (Loihi 2 for loihi/nir): ``loihi_cores``,
    ``loihi_neurons``, ``loihi_synapse_bytes``; ``{}`` on a target without a resource model."""
    from .targets import get_target

    tgt = get_target(spec.get("target", "float"))
    if not (tgt.lowers and tgt.resources is not None):
        return {}
    from .builder import lowered

    res = tgt.resources(lowered(spec))
    return {"loihi_cores": res["cores"], "loihi_neurons": res["neurons"], "loihi_synapse_bytes": res["synapse_bytes"]}


@EVALUATORS.register("mse_rdm")
class RDMFitnessEvaluator(Evaluator):
    """Training-free fitness (``fitness`` in :data:`~snn_nas.mse.fitness.FITNESSES`) on a fixed batch.

    Returns ``fitness`` plus metrics: every registered score, ``params``, ``synops`` (per sample),
    ``firing_rate`` (mean over spiking layers), for a Loihi/NIR candidate the Loihi 2 resource estimate
    (``loihi_cores``, ``loihi_neurons``, ``loihi_synapse_bytes``, :func:`neurosynth.hardware.targets.loihi.loihi2_resources`)
    and ``objectives = [-fitness, *costs]`` where ``cost`` is one name or a comma-separated list of
    ``params``, ``synops``, ``loihi_cores``, ``loihi_synapse_bytes``. ``fitness_T`` scores on the first
    ``fitness_T`` steps of the batch only (a shorter, cheaper horizon). ``reference_spec``/``reference_state``
    give a reference model whose RDM replaces the label RDM (option (a) with a model reference).
    """

    name = "mse_rdm"

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, fitness: str = "rdm", cost: str = "params",
                 fitness_kw: dict | None = None, reference_spec: dict | None = None,
                 reference_state: dict | None = None, all_scores: bool = True, fitness_T: int | None = None):
        FITNESSES.get(fitness)
        self.costs = [c.strip() for c in str(cost).split(",") if c.strip()]
        bad = [c for c in self.costs if c not in COSTS]
        if not self.costs or bad:
            raise ValueError(f"cost must be one or more (comma-separated) of {list(COSTS)}; got {cost!r}")
        if fitness_T is not None:
            if not 1 <= int(fitness_T) <= x.shape[0]:
                raise ValueError(f"fitness_T must lie in [1, {x.shape[0]}] (the batch's steps); got {fitness_T}")
            x = x[: int(fitness_T)]
        self.fitness_T = None if fitness_T is None else int(fitness_T)
        self.x, self.y, self.fitness, self.cost = x, y, fitness, cost
        self.fitness_kw = dict(fitness_kw or {})
        self.reference_spec, self.reference_state = reference_spec, reference_state
        self.all_scores = all_scores
        self._ref_records = None

    def _reference_records(self):
        if self.reference_spec is None:
            return None
        if self._ref_records is None:
            model = build_seeded(self.reference_spec, 0)
            if self.reference_state is not None:
                model.load_state_dict(self.reference_state)
            model.eval()
            with torch.no_grad():
                _, self._ref_records = model(self.x, record=True)
        return self._ref_records

    def evaluate(self, spec: dict, seed: int) -> dict:
        t0 = time.perf_counter()
        model = build_seeded(spec, seed)
        model.train()  # batch norm on batch statistics, as at the start of training
        readout = readout_input(model, self.x)
        with synops_counter(model) as ops, torch.no_grad(), readout:
            out, rec = forward_recorded(model, self.x)
        synops = ops[0] / self.x.shape[1]
        kw = {"y": self.y, "x": self.x, "readout": readout.value, "reference_records": self._reference_records(),
              **self.fitness_kw}
        names = FITNESSES.names() if self.all_scores else [self.fitness]
        scores = {n: float(FITNESSES.get(n)(rec, **kw)) for n in names}
        seconds = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        f = scores[self.fitness]
        metrics = {"params": int(params), "synops": synops, **target_metrics(spec)}
        missing = [c for c in self.costs if c not in metrics]
        if missing:
            raise ValueError(f"cost {missing} needs a Loihi/NIR candidate (space target loihi or nir)")
        objectives = [-f if math.isfinite(f) else math.inf, *[float(metrics[c]) for c in self.costs]]
        return {"fitness": f, "objectives": objectives, "scores": scores, **metrics,
                "firing_rate": float(sum(float(r.float().mean()) for r in rec.values()) / max(len(rec), 1)),
                "fitness_seconds": seconds}

    def describe(self) -> dict:
        return {"name": self.name, "fitness": self.fitness, "cost": self.cost, "batch": list(self.x.shape),
                "fitness_T": self.fitness_T,
                "fitness_kw": self.fitness_kw, "reference_model": self.reference_spec is not None}


def loss_for(spec: dict) -> str:
    """``mean_membrane_ce`` for an LI readout, ``rate_ce`` (spike counts) for a spiking one."""
    return "mean_membrane_ce" if spec.get("readout", "li") == "li" else "rate_ce"


@EVALUATORS.register("mse_train")
class TrainEvaluator(Evaluator):
    """Short training with :func:`neurosynth.training.fit`; fitness = test accuracy (the expensive baseline
    the training-free fitness stands in for)."""

    name = "mse_train"

    def __init__(self, task, *, epochs: int = 2, lr: float = 5e-3, batch_size: int = 64,
                 loss: str | None = None, max_test: int | None = None):
        self.task, self.epochs, self.lr, self.batch_size = task, int(epochs), float(lr), int(batch_size)
        self.loss, self.max_test = loss, max_test

    def evaluate(self, spec: dict, seed: int) -> dict:
        from neurosynth.training import evaluate, fit

        from .data import TensorLoader

        t = self.task
        loss = self.loss or loss_for(spec)
        model = build_seeded(spec, seed)
        train = TensorLoader(t.x_train, t.y_train, self.batch_size, True, seed)
        xte, yte = t.x_test, t.y_test
        if self.max_test:
            xte, yte = xte[:, : self.max_test], yte[: self.max_test]
        test = TensorLoader(xte, yte, 256, False, 0)
        t0 = time.perf_counter()
        with seeded(seed):  # dropout etc. (none today) draw from the candidate seed
            hist = fit(model, train, epochs=self.epochs, lr=self.lr, loss=loss, progress=False)
        train_s = time.perf_counter() - t0
        ev = evaluate(model, test, loss=loss)
        return {"fitness": float(ev["accuracy"]), "test_accuracy": float(ev["accuracy"]),
                "test_loss": float(ev["loss"]), "train_accuracy": float(hist["train_accuracy"][-1]),
                "params": int(sum(p.numel() for p in model.parameters())),
                "train_seconds": train_s, "epoch_seconds": train_s / self.epochs}


def recalibrate_batchnorm(model, x: torch.Tensor, batch_size: int = 128) -> None:
    """Recompute every batch-norm layer's running mean and variance as the exact average over ``x [T, N, ...]``
    (forward passes in training mode without gradients, momentum ``None``); the model is left in eval mode. A model
    without batch norm is only put in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if bns and x.shape[1] > 0:
        saved = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: the exact mean over the batches
        model.train()
        with torch.no_grad():
            for i in range(0, x.shape[1], batch_size):
                model(x[:, i:i + batch_size])
        for m, mom in zip(bns, saved):
            m.momentum = mom
    model.eval()


def carve_validation(x: torch.Tensor, y: torch.Tensor, *, val_images: int, seed: int = 0):
    """Split training tensors ``x [T, N, ...]``, ``y [N]`` into ``(x_train, y_train, x_val, y_val)``: a seeded,
    class-stratified ``val_images`` samples for validation (selection during a search reads only these; the test
    split is never touched), the rest for training."""
    n = int(y.shape[0])
    if not 1 <= val_images < n:
        raise ValueError(f"val_images must lie in [1, {n - 1}] (the training split has {n} samples), got {val_images}")
    import numpy as np

    rng = np.random.default_rng(seed)
    yy = y.numpy()
    classes = np.unique(yy)
    per_class = {c: rng.permutation(np.flatnonzero(yy == c)) for c in classes}
    take = {c: int(round(val_images * len(per_class[c]) / n)) for c in classes}
    short = val_images - sum(take.values())
    for c in sorted(classes, key=lambda c: -len(per_class[c]))[: abs(short)]:
        take[c] += 1 if short > 0 else -1
    val = np.sort(np.concatenate([per_class[c][: take[c]] for c in classes]))
    train = np.setdiff1d(np.arange(n), val)
    vi, ti = torch.as_tensor(val), torch.as_tensor(train)
    return x[:, ti].contiguous(), y[ti].contiguous(), x[:, vi].contiguous(), y[vi].contiguous()


@EVALUATORS.register("mse_budget")
class BudgetTrainEvaluator(Evaluator):
    """Train a candidate at a budget and score it on a validation split (the multi-fidelity search's evaluator).

    ``evaluate(spec, seed, budget=Budget(epochs, images))`` builds the candidate from ``seed``, trains it with
    :func:`neurosynth.training.fit` (Adam, ``lr``, batches of ``batch_size`` shuffled by ``seed``) for
    ``budget.epochs`` epochs on the first ``budget.images`` samples of a fixed permutation of the training tensors
    (drawn once from ``order_seed``, so the rungs' subsets are nested: a larger budget sees the smaller one's images
    and more), and returns ``fitness`` = **validation accuracy** (``x_val``, ``y_val``: carved from the training data
    by :meth:`from_task`; the test split is never read), ``val_loss``, ``train_accuracy``, ``params``, ``synops``
    (synaptic operations per sample of the *trained* network on the first ``synops_samples`` validation samples), the
    target's resource estimate (``loihi_*``, :func:`target_metrics`), ``objectives = [-accuracy, *costs]``,
    ``epochs``, ``images`` and ``train_seconds``. ``budget=None`` is ``default_budget``.

    Before validation, batch-norm statistics are recomputed on up to ``bn_samples`` images of the budget
    (:func:`recalibrate_batchnorm`): after one short epoch the running averages (momentum 0.1) still hold mostly
    their initial values, and every candidate of a low rung would score chance on validation in eval mode.
    """

    name = "mse_budget"
    supports_budget = True

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, *,
                 lr: float = 5e-3, batch_size: int = 64, loss: str | None = None, cost: str = "synops",
                 default_budget=None, synops_samples: int = 256, order_seed: int = 0, bn_samples: int = 512):
        if x_train.shape[1] != len(y_train) or x_val.shape[1] != len(y_val) or len(y_val) < 1:
            raise ValueError("x_train/y_train and x_val/y_val must hold the same number of samples (>= 1)")
        self.costs = [c.strip() for c in str(cost).split(",") if c.strip()]
        if set(self.costs) - set(COSTS):
            raise ValueError(f"cost must be one or more (comma-separated) of {list(COSTS)}; got {cost!r}")
        from ..engine.fidelity import Budget

        self.x_train, self.y_train, self.x_val, self.y_val = x_train, y_train, x_val, y_val
        self.lr, self.batch_size, self.loss, self.cost = float(lr), int(batch_size), loss, cost
        self.default_budget = default_budget or Budget(1, 0)
        self.synops_samples, self.order_seed = int(synops_samples), int(order_seed)
        self.bn_samples = int(bn_samples)
        self.order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(self.order_seed))

    @classmethod
    def from_task(cls, task, *, val_images: int, split_seed: int = 0, **kw) -> BudgetTrainEvaluator:
        """From a :class:`~snn_nas.mse.data.Task`: ``val_images`` training samples become the validation split
        (:func:`carve_validation`); ``task.x_test`` is not used."""
        xtr, ytr, xva, yva = carve_validation(task.x_train, task.y_train, val_images=val_images, seed=split_seed)
        return cls(xtr, ytr, xva, yva, **kw)

    def evaluate(self, spec: dict, seed: int, budget=None) -> dict:
        from neurosynth.training import evaluate, fit

        from .data import TensorLoader

        b = budget or self.default_budget
        n = len(self.y_train)
        images = n if b.images == 0 else min(int(b.images), n)
        idx = self.order[:images]
        loss = self.loss or loss_for(spec)
        model = build_seeded(spec, seed)
        train = TensorLoader(self.x_train[:, idx], self.y_train[idx], self.batch_size, True, seed)
        t0 = time.perf_counter()
        with seeded(seed):
            hist = fit(model, train, epochs=int(b.epochs), lr=self.lr, loss=loss, progress=False)
        train_s = time.perf_counter() - t0
        recalibrate_batchnorm(model, self.x_train[:, idx[: self.bn_samples]])
        ev = evaluate(model, TensorLoader(self.x_val, self.y_val, 256, False, 0), loss=loss)
        model.eval()
        synops = count_synops(model, self.x_val[:, : self.synops_samples])
        acc = float(ev["accuracy"])
        metrics = {"params": int(sum(p.numel() for p in model.parameters() if p.requires_grad)), "synops": synops,
                   **target_metrics(spec)}
        missing = [c for c in self.costs if c not in metrics]
        if missing:
            raise ValueError(f"cost {missing} needs a Loihi/NIR candidate (space target loihi or nir)")
        return {"fitness": acc, "val_accuracy": acc, "val_loss": float(ev["loss"]),
                "objectives": [-acc, *[float(metrics[c]) for c in self.costs]],
                "train_accuracy": float(hist["train_accuracy"][-1]), **metrics, "epochs": int(b.epochs),
                "images": int(images), "train_seconds": train_s}

    def describe(self) -> dict:
        return {"name": self.name, "train": int(len(self.y_train)), "val": int(len(self.y_val)), "lr": self.lr,
                "batch_size": self.batch_size, "loss": self.loss, "cost": self.cost, "order_seed": self.order_seed,
                "default_budget": self.default_budget.as_dict(), "synops_samples": self.synops_samples}
