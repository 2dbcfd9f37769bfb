"""Shared pieces of the MSE-NAS evidence benchmarks (``experiments/msenas_*.py``).

* :func:`sample_unique` draws ``n`` distinct specs (by :func:`snn_nas.engine.spec_hash`) from a space with a
  seeded generator, in a reproducible order (the same seed gives the same list, whatever was run before);
* :class:`ResultsLog` is the resumable ``results.jsonl`` of a benchmark: one JSON row per architecture,
  appended (and flushed) as soon as it is measured, keyed by the spec hash, so a killed job loses at most the
  architecture in flight and a re-run only measures what is missing. With ``protocol=`` it also keeps
  ``protocol.json`` beside the log and refuses to resume a log written under another protocol (other
  training budget, test set, ...), so rows measured in different ways are never mixed;
* :func:`fashion_task` loads Fashion-MNIST as rate-coded spikes, optionally OR-pooled to a lower resolution;
* :func:`loihi_space` is the ``--target loihi`` space the Fashion-MNIST benchmarks sample from.

The scripts are run as ``python benchmarks/NAME.py`` (this folder is then on ``sys.path``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# the Loihi-deployable space of the Fashion-MNIST benchmarks: the demo's FULL_SPACE with up to 2 neurons per cell
# and kernels {1, 3} (at most 4 spiking layers with the default max_layers at T = 6)
FMNIST_SPACE = {"widths": [4, 8, 16], "stem_widths": [4, 8], "kernels": [1, 3], "depth": [1, 2], "max_nodes": 2}


def sample_unique(space, n: int, seed: int, *, exclude=(), accept=None, max_tries: int = 100_000) -> list[dict]:
    """``n`` distinct specs of ``space`` drawn with ``np.random.default_rng(seed)``; specs whose hash is in
    ``exclude`` or for which ``accept(spec)`` is false are skipped. Raises if the space runs out."""
    from snn_nas.engine import spec_hash

    rng = np.random.default_rng(seed)
    specs, seen, tries = [], set(exclude), 0
    while len(specs) < n:
        tries += 1
        if tries > max_tries:
            raise RuntimeError(f"only {len(specs)} distinct acceptable specs after {max_tries} draws (wanted {n})")
        s = space.sample(rng)
        h = spec_hash(s)
        if h in seen or (accept is not None and not accept(s)):
            continue
        seen.add(h)
        specs.append(s)
    return specs


class ResultsLog:
    """A resumable ``results.jsonl`` (one row per architecture, keyed by ``row["hash"]``)."""

    def __init__(self, out: str | Path, protocol: dict | None = None, name: str = "results.jsonl"):
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / name
        self.rows: dict[str, dict] = {}
        if protocol is not None:
            self._check_protocol(json.loads(json.dumps(protocol)))
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file (rows appended by another process working on the same run)."""
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        r = json.loads(line)
                    except json.JSONDecodeError:  # a line cut by kill -9: that architecture is measured again
                        continue
                    self.rows[r["hash"]] = r

    def _check_protocol(self, protocol: dict) -> None:
        p = self.dir / "protocol.json"
        if p.exists():
            old = json.loads(p.read_text())
            diff = sorted(k for k in set(old) | set(protocol) if old.get(k) != protocol.get(k))
            if diff:
                raise SystemExit(f"{self.dir} holds results measured with another protocol (differs in {diff}: "
                                 f"{ {k: old.get(k) for k in diff} } there, { {k: protocol.get(k) for k in diff} } "
                                 "now); use another --out")
        elif self.path.exists() and self.path.stat().st_size:
            raise SystemExit(f"{self.path} exists without protocol.json: cannot tell how it was measured; "
                             "use another --out")
        else:
            p.write_text(json.dumps(protocol, indent=1, sort_keys=True) + "\n")

    def __contains__(self, h: str) -> bool:
        return h in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, h: str) -> dict | None:
        return self.rows.get(h)

    def append(self, row: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        self.rows[row["hash"]] = row

    def ordered(self, specs: list[dict]) -> list[dict]:
        """The stored rows of ``specs``, in that order (specs not measured yet are left out)."""
        from snn_nas.engine import spec_hash

        return self.ordered_hashes([spec_hash(s) for s in specs])

    def ordered_hashes(self, hashes: list[str]) -> list[dict]:
        return [self.rows[h] for h in hashes if h in self.rows]


def or_pool(v, k: int):
    """OR-pool spike frames ``[T, N, C, H, W]`` by ``k`` (a spike at any of the k x k pixels -> one spike)."""
    import torch.nn.functional as F

    if k <= 1:
        return v
    T, N = v.shape[:2]
    out = F.max_pool2d(v.reshape(T * N, *v.shape[2:]), k) > 0
    return out.float().reshape(T, N, v.shape[2], *(s // k for s in v.shape[3:]))


def fashion_task(*, T: int, seed: int, train_limit: int | None, test_limit: int | None, pool: int = 2):
    """Fashion-MNIST as a :class:`snn_nas.mse.data.Task`: rate-coded at ``T`` steps, ``train_limit`` random
    training images (None: all), ``test_limit`` random test images (None or 0: the full 10,000), OR-pooled by
    ``pool``."""
    from snn_nas.mse.data import load_task

    task = load_task("fashion_mnist", T=T, conv=True, seed=seed, limit=train_limit, test_limit=test_limit or None,
                     encoding="rate")
    task.x_train, task.x_test = or_pool(task.x_train, pool), or_pool(task.x_test, pool)
    return task


def loihi_space(input_shape, T: int, overrides: dict | None = None):
    """The ``--target loihi`` MSE space with the CLI's ``max_layers = max(3, 3T/4)`` (:data:`FMNIST_SPACE`
    unless ``overrides`` is given)."""
    from snn_nas.mse.space import MSESpace, MSESpaceConfig

    return MSESpace(MSESpaceConfig.from_dict({"input_shape": list(input_shape), "num_classes": 10, "target": "loihi",
                                              "max_layers": max(3, 3 * T // 4),
                                              **(FMNIST_SPACE if overrides is None else overrides)}))


def split_validation(task, n_val: int):
    """Move the last ``n_val`` training samples of ``task`` into a validation set; returns ``(x_val, y_val)``
    (the training subset is a sorted random sample, so its tail is a random sample too)."""
    x_val, y_val = task.x_train[:, -n_val:].contiguous(), task.y_train[-n_val:].contiguous()
    task.x_train, task.y_train = task.x_train[:, :-n_val].contiguous(), task.y_train[:-n_val].contiguous()
    return x_val, y_val


def train_and_test(spec: dict, seed: int, task, *, epochs: int, lr: float, val=None, batch_size: int = 64) -> dict:
    """Train ``spec`` exactly as :class:`snn_nas.mse.evaluator.TrainEvaluator` does (seeded build, shuffling
    and training) and report validation accuracy (``val = (x, y)``, for choosing among candidates), test
    accuracy and the CPU / wall seconds of training + evaluation."""
    import time

    import torch

    from neurosynth.training import evaluate, fit
    from snn_nas.mse.data import TensorLoader
    from snn_nas.mse.evaluator import build_seeded, loss_for, seeded

    c0, w0 = time.process_time(), time.perf_counter()
    loss = loss_for(spec)
    model = build_seeded(spec, seed)
    with seeded(seed):
        hist = fit(model, TensorLoader(task.x_train, task.y_train, batch_size, True, seed), epochs=epochs, lr=lr,
                   loss=loss, progress=False)
    out = {"train_accuracy": float(hist["train_accuracy"][-1]),
           "params": int(sum(p.numel() for p in model.parameters()))}
    with torch.no_grad():
        if val is not None:
            out["val_accuracy"] = float(evaluate(model, TensorLoader(*val, 256, False, 0), loss=loss)["accuracy"])
        out["test_accuracy"] = float(evaluate(model, TensorLoader(task.x_test, task.y_test, 256, False, 0),
                                              loss=loss)["accuracy"])
    out["cpu_seconds"], out["wall_seconds"] = time.process_time() - c0, time.perf_counter() - w0
    return out
