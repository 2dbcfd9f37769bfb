"""MSE-NAS evaluators (they never search): the training-free RDM fitness and a short-training reference.

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
        metrics = {"params": int(params), "synops": synops}
        from .targets import get_target

        tgt = get_target(spec.get("target", "float"))
        if tgt.lowers and tgt.resources is not None:  # the target's resource model (Loihi 2 estimate for loihi/nir)
            from .builder import lowered

            res = tgt.resources(lowered(spec))
            metrics.update({"loihi_cores": res["cores"], "loihi_neurons": res["neurons"],
                            "loihi_synapse_bytes": res["synapse_bytes"]})
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
