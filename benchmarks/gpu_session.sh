#!/usr/bin/env bash
# One prepared call for a lent GPU machine (see ../shared/gpu/README.md): the Triton kernels' tests on CUDA
# tensors (compiled, not interpreted) and benchmarks/bench_gpu.py (issue 10's LIF table, CubaLIF/ALIF, the recurrent
# SHD model, then a custom neuron: its generated Triton kernel vs built-in LIF, eager vs torch.compile while --budget-s
# allows); everything lands in $OUT as it
# goes (the JSON and the Markdown section after every row).
#
# Before the call, here (once):  echo /.whl/ >> .git/info/exclude; python3 -m pip download -q --no-deps \
#   --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
#   --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl snntorch==1.0.0 spikingjelly==2.0.0 loguru
# The call: run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600)
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
SRC=$PWD
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
ls .whl/*.whl > /dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/ns . > "$OUT/install.txt" 2>&1
export PYTHONPATH=/tmp/ns:/tmp/site OMP_NUM_THREADS=4
cd /tmp   # the installed package, not the checkout
timeout 200 python3 -m pytest -q -p no:cacheprovider -x "$SRC/tests/core/test_triton_ops.py" \
    "$SRC/tests/core/test_triton_recurrent.py" "$SRC/tests/core/test_triton_modules.py" \
    "$SRC/tests/core/test_triton_custom.py" > "$OUT/tests.txt" 2>&1
echo "tests rc=$?" >> "$OUT/tests.txt"
timeout 330 python3 "$SRC/benchmarks/bench_gpu.py" --json "$OUT/bench_gpu.json" --md "$OUT/BENCHMARKS_gpu.md" \
    --budget-s 270 > "$OUT/bench.txt" 2>&1
echo "bench rc=$?" >> "$OUT/bench.txt"
tail -5 "$OUT/tests.txt"; tail -40 "$OUT/bench.txt"
