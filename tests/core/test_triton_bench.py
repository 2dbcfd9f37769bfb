"""benchmarks/bench_gpu.py --smoke: the GPU benchmark script runs end to end on CPU (its neurosynth "fused" rows
through the Triton kernels in the interpreter), writes its JSON and replaces only its own BENCHMARKS.md section."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check(tmp_path, argv, rows):
    bench = _bench()
    md = tmp_path / "B.md"
    md.write_text(f"# Benchmarks\n\nkeep me\n\n{bench.MARK_START}\nold\n{bench.MARK_END}\n\nand me\n")
    out = tmp_path / "r.json"
    assert bench.main(["--smoke", "--json", str(out), "--md", str(md), *argv]) == 0
    res = json.loads(out.read_text())
    from neurosynth._ops.lif import triton as tri

    if tri.INTERPRET:  # on a CUDA machine the smoke run (CPU) cannot pin the compiled kernels
        assert res["fused_backend"].startswith("triton"), res["fused_backend"]
    for key, variants in rows.items():
        for v in variants:
            r = res["rows"][key][v]
            assert "error" not in r, (key, v, r)
            assert r["median_ms"] > 0
    text = md.read_text()
    assert "keep me" in text and "and me" in text and "\nold\n" not in text
    assert text.count(bench.MARK_START) == 1 and "Smoke run" in text
    return res


def test_bench_gpu_smoke_lif_quick(tmp_path):
    res = _check(tmp_path, ["--parts", "lif", "--variants", "floor,ns_fused,ns_python", "--dtypes", "fp32"],
                 {"lif/48/fp32": ["floor", "ns_fused", "ns_python"]})
    assert res["rows"]["lif/48/fp32"]["agreement"]["ns_python"] == 1.0  # fused and python spikes identical


@pytest.mark.slow
def test_bench_gpu_smoke_everything(tmp_path):
    pytest.importorskip("spikingjelly")
    pytest.importorskip("snntorch")
    res = _check(tmp_path, [], {"lif/48/fp32": ["floor", "ns_fused", "ns_python", "sj", "snntorch"],
                                "lif/48/bf16": ["floor", "ns_fused", "sj"],
                                "cubalif/48/fp32": ["ns_fused", "ns_python"], "alif/48/bf16": ["ns_fused"],
                                "shd/fp32": ["fused", "python"], "shd/bf16": ["fused", "python"]})
    assert res["rows"]["shd/fp32"]["max_abs_out_diff"] == "0"
    assert res["goals"] == {}  # a smoke run judges no goal


def test_bench_gpu_smoke_custom_neuron_compile(tmp_path):
    """The custom-neuron part (eager vs torch.compile of a Python ``charge``) runs and reports the compile time."""
    res = _check(tmp_path, ["--parts", "custom", "--compile-backend", "aot_eager"],
                 {"custom/48/fp32": ["eager", "compiled"]})
    assert res["rows"]["custom/48/fp32"]["compiled"]["first_call_s"] > 0
