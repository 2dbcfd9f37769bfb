"""The runner owns the search loop: budget, parallel evaluation, progress, logging and checkpoints.

One generation::

    specs = strategy.ask(population)
    for each spec: validate, hash; reuse the archived result if the hash is known, else evaluate it
        (seed = derive_seed(run_seed, hash)) serially, in worker processes or as Ray tasks, and store
        each record in the archive as soon as it arrives
    strategy.tell(specs, results)            # results in ask order, whatever order they finished in
    archive.save_state(generation, strategy.state_dict(), summary)

Resume: the strategy state saved after the last completed generation is loaded and that generation's
``ask`` is replayed; evaluations already archived are read back, so a ``kill -9`` loses at most the
evaluations that were in flight. Because candidate seeds depend only on the run seed and the hash and
``tell`` sees results in ask order, serial, ``workers=N`` and Ray runs give the same archive.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from .archive import Archive
from .evaluator import Evaluator, evaluate_safely
from .space import SearchSpace, derive_seed, spec_hash
from .strategy import Strategy

log = logging.getLogger("snn_nas.engine")

_WORKER_EVALUATOR: Evaluator | None = None


_WORKER_INIT_ERROR: str | None = None

WORKER_REGISTRATION_HINT = (
    "spawned worker processes import your modules afresh and do not run the __main__ script: register custom "
    "neurons/layers (@register_neuron, layer_type) in an importable module that the spec names as its \"plugin\" "
    "or that the evaluator's module imports, or run with workers=0")


def _init_worker(payload: bytes, plugins: tuple[str, ...] = ()) -> None:
    """Load the parent's ``--plugin`` files/modules (custom neurons) and the installed neuron entry points, then
    unpickle the evaluator inside the worker; an error is kept and reported by every evaluation (a failure here
    would otherwise kill the process and surface only as 'worker process died')."""
    import pickle

    global _WORKER_EVALUATOR, _WORKER_INIT_ERROR
    try:
        from neurosynth.plugins import load_entry_points, load_plugin

        load_entry_points()
        for ref in plugins:
            load_plugin(ref)
        _WORKER_EVALUATOR = pickle.loads(payload)
    except Exception as e:  # noqa: BLE001 - reported per evaluation below
        _WORKER_INIT_ERROR = (f"the worker could not load the evaluator ({type(e).__name__}: {e}); "
                              + WORKER_REGISTRATION_HINT)
    _one_thread()


def _one_thread() -> None:
    """One torch thread per worker (only if the evaluator uses torch: importing it costs seconds)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _worker_eval(spec: dict, seed: int, budget=None) -> dict:
    if _WORKER_INIT_ERROR is not None:
        return _failed(_WORKER_INIT_ERROR)
    rec = evaluate_safely(_WORKER_EVALUATOR, spec, seed, budget)
    err = rec.get("error") or ""
    if rec["status"] == "failed" and ("unknown neuron" in err or "not registered" in err or "unknown layer" in err):
        rec["error"] = f"{err} (in a worker process: {WORKER_REGISTRATION_HINT})"
    return rec


class _Serial:
    """In this process. ``map_unordered`` for generations; ``submit``/``next_done`` (first in, first out) for the
    multi-fidelity engine's job-at-a-time scheduling."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self._queue: list = []

    def map_unordered(self, tasks):
        for i, spec, seed in tasks:
            yield i, evaluate_safely(self.evaluator, spec, seed)

    def submit(self, key, spec, seed, budget=None):
        self._queue.append((key, spec, seed, budget))

    def next_done(self):
        key, spec, seed, budget = self._queue.pop(0)
        return key, evaluate_safely(self.evaluator, spec, seed, budget)

    def close(self):
        pass


class _Pool:
    """Local worker processes (spawned, one torch thread each)."""

    def __init__(self, evaluator, workers: int):
        self.evaluator, self.workers = evaluator, workers
        self._new()

    def _new(self):
        import multiprocessing as mp
        import pickle
        from concurrent.futures import ProcessPoolExecutor

        from neurosynth.plugins import loaded_plugins

        self.ex = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                      initializer=_init_worker,
                                      initargs=(pickle.dumps(self.evaluator), tuple(loaded_plugins())))

    def map_unordered(self, tasks):
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        futs = {self.ex.submit(_worker_eval, spec, seed): i for i, spec, seed in tasks}
        broken = False
        for f in as_completed(futs):
            try:
                rec = f.result()
            except BrokenProcessPool as e:
                broken = True
                rec = _failed(f"worker process died (out of memory or killed): {e}")
            except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                rec = _failed(f"exception in worker: {type(e).__name__}: {e}")
            yield futs[f], rec
        if broken:
            self.ex.shutdown(wait=False, cancel_futures=True)
            self._new()

    def submit(self, key, spec, seed, budget=None):
        if not hasattr(self, "_futs"):
            self._futs = {}
        self._futs[self.ex.submit(_worker_eval, spec, seed, budget)] = (key, spec, seed, budget)

    def next_done(self):
        """The next finished job ``(key, record)``; a dead worker process fails its job, the pool is rebuilt and
        the other jobs of the dead pool are submitted again (they had not finished)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(list(self._futs), return_when=FIRST_COMPLETED)
        f = min(done, key=lambda d: self._futs[d][0])  # several finished together: a fixed order
        key, spec, seed, budget = self._futs.pop(f)
        try:
            return key, f.result()
        except BrokenProcessPool as e:
            rest = list(self._futs.values())
            self._futs = {}
            self.ex.shutdown(wait=False, cancel_futures=True)
            self._new()
            for job in rest:
                self.submit(*job)
            return key, _failed(f"worker process died (out of memory or killed): {e}")
        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
            return key, _failed(f"exception in worker: {type(e).__name__}: {e}")

    def close(self):
        self.ex.shutdown(wait=True, cancel_futures=True)


class _Ray:
    """Ray tasks. ``address``: ``"auto"`` (existing cluster, else a new local one), ``"local"`` /
    ``"local:N"`` (a new local instance with N CPUs) or a cluster address (``"ray://host:10001"``)."""

    def __init__(self, evaluator, address: str):
        try:
            import ray
        except ImportError as e:
            from neurosynth.errors import MissingExtraError

            raise MissingExtraError("ray", "ray", "--ray") from e
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if address.startswith("local"):
                n = address.partition(":")[2]
                ray.init(num_cpus=int(n) if n else None, **kw)
            elif address == "auto":
                try:
                    ray.init(address="auto", **kw)
                except (ConnectionError, RuntimeError):
                    ray.init(**kw)
            else:
                ray.init(address=address, **kw)
            self.started = True
        self.ev_ref = ray.put(evaluator)
        self.remote = ray.remote(num_cpus=1, max_retries=0)(_ray_eval)

    def map_unordered(self, tasks):
        refs = {self.remote.remote(self.ev_ref, spec, seed): i for i, spec, seed in tasks}
        pending = list(refs)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for r in done:
                try:
                    rec = self.ray.get(r)
                except Exception as e:  # noqa: BLE001 - a crashed Ray worker
                    rec = _failed(f"ray task failed: {type(e).__name__}: {e}")
                yield refs[r], rec

    def submit(self, key, spec, seed, budget=None):
        if not hasattr(self, "_refs"):
            self._refs = {}
        self._refs[self.remote.remote(self.ev_ref, spec, seed, budget)] = key

    def next_done(self):
        done, _ = self.ray.wait(list(self._refs), num_returns=1)
        r = done[0]
        key = self._refs.pop(r)
        try:
            return key, self.ray.get(r)
        except Exception as e:  # noqa: BLE001 - a crashed Ray worker
            return key, _failed(f"ray task failed: {type(e).__name__}: {e}")

    def close(self):
        if self.started:
            self.ray.shutdown()


def _ray_eval(evaluator, spec, seed, budget=None):
    _one_thread()
    return evaluate_safely(evaluator, spec, seed, budget)


def _failed(reason: str) -> dict:
    return {"status": "failed", "fitness": math.nan, "objectives": None, "metrics": {}, "error": reason,
            "seconds": None, "cpu_seconds": None}


def make_executor(evaluator: Evaluator, *, workers: int = 0, ray: str | None = None):
    """The executor of a search: Ray tasks (``ray`` an address), ``workers`` spawned processes, or this process."""
    if ray:
        return _Ray(evaluator, ray)
    if workers >= 1:
        return _Pool(evaluator, workers)
    return _Serial(evaluator)


def _result_for_strategy(rec: dict) -> dict:
    out = {"fitness": rec["fitness"] if rec["status"] == "ok" else math.nan, **(rec.get("metrics") or {})}
    if rec.get("objectives") is not None:
        out["objectives"] = rec["objectives"]
    return out


class Runner:
    """Drive ``strategy`` over ``space`` with ``evaluator`` for ``generations`` x ``population``.

    ``workers``: 0 = evaluate in this process, N >= 1 = N spawned worker processes.
    ``ray``: None, or an address for :class:`_Ray` (takes precedence over ``workers``).
    ``resume``: continue a run whose archive already has evaluations; without it such an archive is an
    error (so a finished run is never overwritten by accident).
    ``on_generation(summary)``: optional callback after each generation (e.g. for plots).
    """

    def __init__(self, space: SearchSpace, strategy: Strategy, evaluator: Evaluator, archive: Archive, *,
                 generations: int, population: int, seed: int, workers: int = 0, ray: str | None = None,
                 progress: bool = True, resume: bool = False, config: dict | None = None,
                 on_generation: Callable[[dict], None] | None = None):
        if generations < 1 or population < 1:
            raise ValueError(f"generations and population must be >= 1, got {generations} and {population}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.space, self.strategy, self.evaluator, self.archive = space, strategy, evaluator, archive
        self.generations, self.population, self.seed = int(generations), int(population), int(seed)
        self.workers, self.ray, self.progress, self.resume = int(workers), ray, progress, resume
        self.on_generation = on_generation
        self.config = {"space": space.name, "strategy": strategy.name, "evaluator": evaluator.name,
                       "population": self.population, "seed": self.seed, **(config or {})}

    # ------------------------------------------------------------------------------------------------
    def _check_resume(self) -> int:
        """Return the first generation to run (0 for a fresh run)."""
        stored = self.archive.get_meta("config")
        if stored is None:
            if len(self.archive):
                raise ValueError(f"{self.archive.path} has evaluations but no run config; it is not from this tool")
            self.archive.set_meta("config", self.config)
            return 0
        if not self.resume:
            raise ValueError(f"{self.archive.path} already holds a search; pass resume=True (--resume) to "
                             "continue it, or choose another output directory")
        for k, v in self.config.items():
            if k in stored and stored[k] != v:
                raise ValueError(f"cannot resume: '{k}' was {stored[k]!r} in the stored run, now {v!r}; "
                                 "use the same settings or another output directory")
        last = self.archive.last_state()
        if last is None:
            return 0
        gen, state = last
        try:
            self.strategy.load_state_dict(state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise ValueError(f"cannot resume: the strategy state of generation {gen} in {self.archive.path} (table "
                             f"strategy_state) is damaged ({type(e).__name__}: {e}); delete the output directory and "
                             "search again without --resume") from e
        return gen + 1

    def _executor(self):
        return make_executor(self.evaluator, workers=self.workers, ray=self.ray)

    def run(self) -> dict:
        start = self._check_resume()
        t_run = time.perf_counter()
        n_new = n_cached = 0
        ex = None
        try:
            for gen in range(start, self.generations):
                if self.strategy.stopped:
                    log.info("strategy stopped after generation %d", gen - 1)
                    break
                specs = [self.space.validate(s) for s in self.strategy.ask(self.population)]
                hashes = [spec_hash(s) for s in specs]
                records: dict[str, dict] = {}
                todo: list[tuple[int, dict, int]] = []
                queued: set[str] = set()
                for i, (s, h) in enumerate(zip(specs, hashes)):
                    if h in records or h in queued:
                        continue
                    old = self.archive.get(h)
                    if old is not None:  # never evaluate an archived architecture twice
                        records[h] = old
                        n_cached += 1
                    else:
                        queued.add(h)
                        todo.append((i, s, derive_seed(self.seed, h)))
                if todo and ex is None:
                    ex = self._executor()
                t_gen = time.perf_counter()
                bar = _bar(len(specs), gen, self.generations, self.progress)
                bar.update(len(specs) - len(todo))
                for i, rec in (ex.map_unordered(todo) if todo else ()):
                    h = hashes[i]
                    seed = derive_seed(self.seed, h)
                    self.archive.add(specs[i], rec, generation=gen, seed=seed)
                    records[h] = rec
                    n_new += 1
                    bar.update(1)
                    best = self.archive.best(1)
                    if best:
                        bar.set_postfix(best=f"{best[0]['fitness']:.4g}")
                bar.close()
                results = [_result_for_strategy(records[h]) for h in hashes]
                self.strategy.tell(specs, results)
                summary = _summary(gen, results, time.perf_counter() - t_gen, len(todo))
                self.archive.save_state(gen, self.strategy.state_dict(), summary)
                log.info("generation %d: best %.4g mean %.4g failed %d (%d new evaluations, %.1fs)",
                         gen, summary["best"], summary["mean"], summary["failed"], len(todo), summary["seconds"])
                if self.on_generation:
                    self.on_generation(summary)
        finally:
            if ex is not None:
                ex.close()
        best = self.archive.best(1)
        return {
            "generations": self.generations, "population": self.population, "seed": self.seed,
            "evaluations": len(self.archive), "evaluated_this_run": n_new, "cached_this_run": n_cached,
            "failed": len(self.archive.records("failed")),
            "best": ({"fitness": best[0]["fitness"], "hash": best[0]["hash"], "spec": best[0]["spec"],
                      "metrics": best[0]["metrics"]} if best else None),
            "hall_of_fame": [{"fitness": f, "hash": spec_hash(s)} for f, s in self.strategy.hall_of_fame],
            "history": self.archive.summaries(),
            "seconds": time.perf_counter() - t_run,
        }


def _summary(gen: int, results: list[dict], seconds: float, n_new: int) -> dict:
    fs = [r["fitness"] for r in results if not math.isnan(r["fitness"])]
    return {"generation": gen, "best": max(fs) if fs else math.nan, "mean": sum(fs) / len(fs) if fs else math.nan,
            "worst": min(fs) if fs else math.nan, "failed": len(results) - len(fs), "evaluated": n_new,
            "seconds": seconds}


def _bar(total: int, gen: int, generations: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"generation {gen + 1}/{generations}", leave=False, disable=not enabled,
                unit="arch")
