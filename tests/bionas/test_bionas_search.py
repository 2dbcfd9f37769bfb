"""BioNAS-DARTS / BioNAS-EG loops, the EG compound fitness and the persistent CMA-ES."""

import json
import math

import numpy as np
import pytest
import torch

from snn_nas.bionas.data import ImageData
from snn_nas.bionas.search import EGExplorer, compound_fitness, darts_search, edge_similarity, eg_search
from snn_nas.bionas.space import CellSpace


def _tiny_data(n=48):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 6, 6, generator=g) * 0.2
    x[:, 0, :2] += (y == 0).float().view(-1, 1, 1)  # class-dependent stripes: learnable
    x[:, 0, 4:] += (y == 1).float().view(-1, 1, 1)
    return ImageData("tiny", x, y, x[:12], y[:12], 3)


def test_compound_fitness_signs():
    # candidate no better than alpha: similarity rewarded (subtracted); otherwise penalised (diversity)
    assert compound_fitness(1.0, 0.5, acc_ref=0.8, acc_cand=0.5, eta=0.4) == pytest.approx(0.8)
    assert compound_fitness(1.0, 0.5, acc_ref=0.5, acc_cand=0.8, eta=0.4) == pytest.approx(1.2)
    p = {"cell": torch.tensor([[1.0, 0.0], [0.5, 0.5]])}
    assert edge_similarity(p, p) == pytest.approx(1.0)
    q = {"cell": torch.tensor([[0.0, 1.0], [0.5, 0.5]])}
    assert edge_similarity(p, q) == pytest.approx((0.5 + 1.0) / 2)


def test_eg_explorer_state_persists_and_uses_given_rng():
    state = np.random.get_state()
    f = lambda x: float(np.sum((x - 1.0) ** 2))  # noqa: E731
    a = EGExplorer(np.zeros(5), np.random.default_rng(0), sigma0=0.5, popsize=8)
    b = EGExplorer(np.zeros(5), np.random.default_rng(0), sigma0=0.5, popsize=8)
    for _ in range(15):
        a.generation(f)
        b.generation(f)
    assert np.array_equal(a.mean, b.mean)  # same generator -> same search
    assert f(a.mean) < f(np.zeros(5)) / 4  # the mean moved towards the optimum over generations
    assert a.es.countiter == 15
    a.cap_sigma(0.01)
    assert a.sigma == pytest.approx(0.01)
    assert np.array_equal(np.random.get_state()[1], state[1])  # global numpy RNG untouched


def test_darts_search_runs_and_freezes_alpha_in_warmup():
    data = _tiny_data()
    sp = CellSpace("nb201", ("fa", "brsf"))
    res = darts_search(sp, data, epochs=2, C=4, layers=1, batch_size=12, warmup=1, seed=0, a_lr=0.1)
    sp.validate(res["genotype"])
    assert [h["alpha_updates"] for h in res["history"]] == [False, True]
    ent = [h["alpha_entropy"]["cell"] for h in res["history"]]
    assert abs(ent[0] - np.log(sp.n_columns)) < 1e-3  # untouched during warm-up
    assert ent[1] < ent[0] - 1e-3
    per_edge = res["history"][1]["alpha_entropy_per_edge"]["cell"]
    assert len(per_edge) == sp.n_edges and np.mean(per_edge) == pytest.approx(ent[1])
    from snn_nas.bionas.search import alpha_moved

    assert alpha_moved(res["history"], sp) and not alpha_moved(res["history"][:1], sp)
    again = darts_search(sp, data, epochs=2, C=4, layers=1, batch_size=12, warmup=1, seed=0, a_lr=0.1)
    assert again["logits"] == res["logits"]  # same seed, same result


def test_eg_search_sigma_schedule_and_persistent_cma():
    data = _tiny_data()
    sp = CellSpace("nb201", ("fa", "usf"))
    res = eg_search(sp, data, epochs=4, C=4, layers=1, batch_size=12, warmup=1, generations=2, popsize=6,
                    eval_batch=12, seed=0)
    sp.validate(res["genotype"])
    logs = [h for h in res["history"] if "sigma" in h]
    assert [h["sigma_cap"] for h in logs] == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    assert all(h["sigma"] <= h["sigma_cap"] + 1e-12 for h in logs)
    assert res["cma"]["iterations"] == 2 * 3  # one CMA-ES instance across all epochs
    assert res["cma"]["evaluations"] == 6 * 2 * 3


def test_eg_cma_is_an_engine_strategy_with_resumable_state():
    from snn_nas.bionas.engine_space import LogitSpace
    from snn_nas.strategies import STRATEGIES
    from snn_nas.strategies.cma import CMAESLogits

    assert STRATEGIES.get("eg_cma") is CMAESLogits
    f = lambda z: float(np.sum((np.asarray(z) - 1.0) ** 2))  # noqa: E731
    sp = LogitSpace(4)
    a = CMAESLogits(sp, np.random.default_rng(0), sigma0=0.5, popsize=6)
    for _ in range(3):
        specs = a.ask()
        assert len(specs) == 6 and all(sp.validate(s) for s in specs)
        a.tell(specs, [{"fitness": -f(s["z"])} for s in specs])
    state = json.loads(json.dumps(a.state_dict()))
    b = CMAESLogits(sp, np.random.default_rng(123), sigma0=0.5, popsize=6)
    b.load_state_dict(state)
    sa, sb = a.ask(), b.ask()
    assert sa == sb  # the restored strategy continues exactly
    a.tell(sa, [{"fitness": math.nan}] + [{"fitness": -f(s["z"])} for s in sa[1:]])  # a failure ranks last
    assert sa[0] not in [s for _, s in a.hof.items()]
    assert a.hof.items()[0][0] >= max(-f(s["z"]) for s in sa[1:])


def test_eg_cma_state_is_plain_json_replayed_on_load_including_sigma_caps():
    """Loading a search checkpoint never unpickles: the CMA state is its start and an ask/tell/cap log."""
    from snn_nas.bionas.engine_space import LogitSpace
    from snn_nas.strategies.cma import CMAESLogits

    f = lambda z: float(np.sum((np.asarray(z) - 0.5) ** 2))  # noqa: E731
    sp = LogitSpace(5)
    a = CMAESLogits(sp, np.random.default_rng(7), sigma0=0.8, popsize=5)
    for t in range(4):
        a.cap_sigma(max(1.0 / (t + 1), 0.1))
        specs = a.ask()
        a.tell(specs, [{"fitness": -f(s["z"])} for s in specs])
    pending = a.ask(3)  # a checkpoint between ask and tell
    text = json.dumps(a.state_dict())
    assert '"es"' not in text and "cma_log" in text
    b = CMAESLogits(sp, np.random.default_rng(99), sigma0=0.1, popsize=9)
    b.load_state_dict(json.loads(text))
    assert b.sigma == a.sigma and np.array_equal(b.mean, a.mean) and b.popsize == 5
    values = [{"fitness": -f(s["z"])} for s in pending]
    a.tell(pending, values)
    b.tell(pending, values)
    assert a.ask() == b.ask()
    old = {**a.state_dict(), "es": "gASV..."}
    del old["cma_log"]
    with pytest.raises(ValueError, match="start the search afresh"):
        b.load_state_dict(old)
