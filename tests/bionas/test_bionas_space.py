"""BioNAS spaces, derivation rule, supernet and derived models."""

import json

import numpy as np
import pytest
import torch

from neurosynth.rules import BioConv2d
from snn_nas.bionas.model import build_model, make_spec
from snn_nas.bionas.ops import FactorizedReduce
from snn_nas.bionas.space import CellSpace, edge_rules, split_logits, with_rule
from snn_nas.bionas.supernet import SuperNet


def test_darts_columns_and_masks():
    sp = CellSpace("darts")
    # none, max, avg, skip(identity), skip x 4 rules (stride 2), 4 convs x 4 rules
    assert sp.n_columns == 4 + 4 + 16 and sp.n_edges == 14
    normal, reduce = sp.mask("normal"), sp.mask("reduce")
    assert normal.sum(1).tolist() == [20] * 14  # K x R convs + pools + none + one identity skip
    stride2 = [k for k, (j, i) in enumerate(sp.edges) if i < 2]
    assert all(reduce[k].sum() == 23 for k in stride2)  # four rule-carrying skip variants
    assert {sp.columns[c] for c in np.flatnonzero(reduce[stride2[0]]) if sp.columns[c][0] == "skip_connect"} == \
        {("skip_connect", r) for r in ("fa", "usf", "brsf", "frsf")}


def test_skip_variants_are_distinct_modules():
    from snn_nas.bionas.ops import build_op

    a, b = build_op("skip_connect", 4, 2, "fa", True), build_op("skip_connect", 4, 2, "usf", True)
    assert isinstance(a, FactorizedReduce) and a.conv_1.rule.name == "fa" and b.conv_1.rule.name == "usf"
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    torch.manual_seed(0)
    a(x).sum().backward()
    g_fa = x.grad.clone()
    x.grad = None
    b.load_state_dict(a.state_dict(), strict=False)  # same weights, different rule -> different error
    b(x).sum().backward()
    assert not torch.allclose(g_fa, x.grad)


def _logits(sp, fill):
    return {c: np.full((sp.n_edges, sp.n_columns), -5.0) if fill is None else fill(c) for c in sp.cell_types}


def test_darts_derivation_rule_top2_and_none_excluded():
    sp = CellSpace("darts")
    L = _logits(sp, None)
    none = sp.columns.index(("none", None))
    col = sp.columns.index(("sep_conv_3x3", "brsf"))
    for c in sp.cell_types:
        L[c][:, none] = 10.0  # 'none' dominates everywhere but must never be chosen
        for k, (_, i) in enumerate(sp.edges):
            L[c][k, col] = float(i)  # stronger from later predecessors
    g = sp.derive(L)
    sp.validate(g)
    for c in ("normal", "reduce"):
        for j in range(2, 6):
            ins = sorted(e["from"] for e in g[c] if e["node"] == j)
            assert ins == [j - 2, j - 1]  # the two strongest incoming edges
        assert all(e["op"] == "sep_conv_3x3" and e["rule"] == "brsf" for e in g[c])


def test_skip_cap_guards_collapse():
    sp = CellSpace("darts")
    skip = sp.columns.index(("skip_connect", None))
    conv = sp.columns.index(("dil_conv_3x3", "fa"))
    L = _logits(sp, None)
    L["normal"][:, skip] = 5.0
    L["normal"][:, conv] = 1.0
    assert sum(e["op"] == "skip_connect" for e in sp.derive(L, max_skip=None)["normal"]) == 8
    g = sp.derive(L, max_skip=2)
    assert sum(e["op"] == "skip_connect" for e in g["normal"]) == 2
    assert sum(e["op"] == "dil_conv_3x3" for e in g["normal"]) == 6


def test_nb201_argmax_and_validation_errors():
    sp = CellSpace("nb201")
    assert sp.n_columns == 3 + 2 * 4 and sp.n_edges == 6
    L = {"cell": np.zeros((6, sp.n_columns))}
    L["cell"][:, sp.columns.index(("nor_conv_3x3", "usf"))] = 3.0
    L["cell"][5, sp.columns.index(("none", None))] = 9.0
    g = sp.derive(L)
    assert [e["op"] for e in g["edges"]] == ["nor_conv_3x3"] * 5 + ["none"]
    bad = json.loads(json.dumps(g))
    bad["edges"][0]["rule"] = None
    with pytest.raises(ValueError, match="needs a learning rule"):
        sp.validate(bad)
    bad = json.loads(json.dumps(g))
    bad["edges"][0]["op"] = "sep_conv_3x3"
    with pytest.raises(ValueError, match="not part of the nb201 space"):
        sp.validate(bad)
    bad = json.loads(json.dumps(g))
    bad["edges"].pop()
    with pytest.raises(ValueError, match="cover edges"):
        sp.validate(bad)
    with pytest.raises(ValueError, match="unknown learning rule"):
        CellSpace("nb201", ("fa", "nope"))


def test_sampled_genotypes_validate_and_build():
    from snn_nas.bionas.model import build_model, make_spec

    rng = np.random.default_rng(0)
    for kind in ("darts", "nb201"):
        sp = CellSpace(kind)
        for _ in range(5):
            g = sp.sample(rng)
            assert sp.validate(g) == g
        model = build_model(make_spec(g, C=4, layers=2))
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_supernet_masks_and_external_probabilities():
    torch.manual_seed(0)
    sp = CellSpace("nb201", ("fa", "usf"))
    net = SuperNet(sp, C=4, layers=1, generator=torch.Generator().manual_seed(0))
    p = net.probabilities()["cell"]
    assert torch.allclose(p.sum(-1), torch.ones(6))
    x = torch.randn(4, 1, 8, 8)
    out = net(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(a.grad is not None for a in net.arch_parameters())
    logits = {"cell": torch.zeros(6, sp.n_columns)}
    logits["cell"][:, sp.columns.index(("skip_connect", None))] = 50.0
    g = net.genotype(max_skip=None)
    assert len(g["edges"]) == 6
    net.eval()
    with torch.no_grad():
        a = net(x, net.probabilities(logits))
    assert torch.isfinite(a).all()
    assert split_logits(sp, np.zeros(6 * sp.n_columns))["cell"].shape == (6, sp.n_columns)


@pytest.mark.parametrize("kind", ["darts", "nb201"])
def test_derived_model_roundtrip_through_rundir(tmp_path, kind):
    from neurosynth.rundir import RunDir, load_run

    sp = CellSpace(kind)
    g = sp.sample(np.random.default_rng(3))
    torch.manual_seed(0)
    spec = make_spec(g, C=4, layers=2 if kind == "darts" else 1, frame_rule="frsf")
    model = build_model(spec)
    rules_used = {m.rule.name for m in model.modules() if isinstance(m, BioConv2d)}
    assert set(edge_rules(g)) | {"frsf"} >= rules_used
    x = torch.rand(3, 1, 8, 8)
    model.eval()
    rd = RunDir(tmp_path / "run")
    rd.save_model(model, spec)
    arch = json.loads((tmp_path / "run" / "arch.json").read_text())
    assert arch["kind"] == "bionas" and arch["plugin"] == "snn_nas.bionas.model"
    loaded, _, _ = load_run(tmp_path / "run")
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
    fb = {k: v for k, v in loaded.state_dict().items() if "feedback" in k or "weight_backward" in k}
    assert fb and all(torch.equal(v, model.state_dict()[k]) for k, v in fb.items())


def test_single_rule_baseline_and_dfa_frame():
    g = CellSpace("nb201").sample(np.random.default_rng(1))
    g2 = with_rule(g, "dfa")
    assert set(edge_rules(g2)) <= {"dfa"}
    torch.manual_seed(0)
    model = build_model(make_spec(g2, C=4, layers=1, frame_rule="dfa"))
    x = torch.rand(5, 1, 8, 8, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="unknown fields"):
        make_spec(g, C=4) | {"bogus": 1} and build_model({**make_spec(g, C=4), "bogus": 1})


def test_extra_local_ops_in_the_space():
    from neurosynth import rules as R

    sp = CellSpace("nb201", ("fa",), ("hebbian_conv_3x3", "pc_conv_3x3"))
    assert ("hebbian_conv_3x3", None) in sp.columns and ("pc_conv_3x3", None) in sp.columns
    torch.manual_seed(0)
    net = SuperNet(sp, C=4, layers=1)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.01)
    R.attach(net, opt)
    hebb = [m for m in net.modules() if isinstance(m, R.HebbianConv2d)]
    assert len(hebb) == 3 * 6  # one per edge of each of the 3 stage cells
    net(torch.rand(4, 1, 8, 8)).sum().backward()
    opt.step()
    assert all(int(m.hebbian_steps) == 1 for m in hebb)
    g = {"space": "nb201", "edges": [{"node": j, "from": i, "op": "hebbian_conv_3x3", "rule": None}
                                     for j, i in sp.edges]}
    model = build_model(make_spec(g, C=4, layers=1))
    assert "cells.0.ops.0.1.hebbian_weight" in model.state_dict()
