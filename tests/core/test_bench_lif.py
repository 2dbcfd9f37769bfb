"""benchmarks/bench_lif.py's issue-10 variants build and agree: the recurrent SHD model (fast path vs python loop)
and the custom neuron (eager vs torch.compile), at tiny batch/steps (no timing here)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_lif", ROOT / "benchmarks" / "bench_lif.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recurrent_shd_variants_same_loss_and_gradients():
    bench = _bench()
    out = {}
    for v in ("shd_fused", "shd_python"):
        step, info = bench._build(v, 2, 3)
        loss, _ = step()
        out[v] = (float(loss.detach()), info, [p.grad.clone() for p in step.params])
    (lf, inf_f, gf), (lp, inf_p, gp) = out["shd_fused"], out["shd_python"]
    assert inf_f["fast_path"] and not inf_p["fast_path"] and inf_f["hidden"] == 1024
    assert lf == lp
    for a, b in zip(gf, gp):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_recurrent_shd_flag_sets_the_issue_size(monkeypatch):
    bench = _bench()
    seen = {}
    # the C++ pre-build step and lscpu: no subprocess in this test
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "", ""))
    monkeypatch.setattr(bench, "_run_worker", lambda v, args, m: seen.setdefault(v, (args.batch, args.steps)) and {
        "variant": v, "error": "not run in the test"})
    assert bench.main(["--recurrent-shd"]) == 0
    assert seen == {"shd_fused": (256, 100), "shd_python": (256, 100)}


@pytest.mark.slow
def test_custom_neuron_compiled_equals_eager():
    pytest.importorskip("torch._inductor")
    bench = _bench()
    losses = [float(bench._build(v, 2, 3)[0]()[0].detach()) for v in ("custom_eager", "custom_compiled")]
    assert abs(losses[0] - losses[1]) < 1e-5


def test_custom_generated_equals_eager_reference_loop():
    """The benchmark's generated-kernel rows compute what the reference loop computes (same loss and gradients)."""
    bench = _bench()
    runs = {}
    for v in ("custom_generated", "custom_eager"):
        step, info = bench._build(v, 2, 4)
        loss, _ = step()
        runs[v] = (float(loss.detach()), [p.grad.clone() for p in step.params])
        if v == "custom_generated":
            assert info["paths"]()["QuadraticLIF"] == "generated-cpu"
    assert runs["custom_generated"][0] == runs["custom_eager"][0]
    for a, b in zip(runs["custom_generated"][1], runs["custom_eager"][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fast,slow", [("ns_adlif", "ns_adlif_python"), ("rec_adlif", "rec_adlif_python")])
def test_adlif_variants_same_loss_and_gradients(fast, slow):
    bench = _bench()
    out = {}
    from neurosynth._ops import custom

    for v in (fast, slow):
        step, info = bench._build(v, 2, 6)
        custom._paths.pop("AdLIF", None)
        loss, _ = step()
        out[v] = (float(loss.detach()), info["paths"]().get("AdLIF"), [p.grad.clone() for p in step.params])
    (lf, path_f, gf), (ls, path_s, gs) = out[fast], out[slow]
    assert path_f == "generated-cpu" and path_s is None  # the python variant never enters the kernel
    assert lf == ls
    for a, b in zip(gf, gs):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
