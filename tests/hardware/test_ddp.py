"""DDP launched by torchrun (2 processes, gloo, CPU) gives the same weights as one process on the global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from neurosynth.apps.ddp import main
from neurosynth.arch import build, mlp_spec
from neurosynth.distributed import ShardedLoader
from neurosynth.io import write_json


def _setup(tmp_path):
    gen = torch.Generator().manual_seed(0)
    spec = mlp_spec(12, [16], 4, neuron="lif", neuron_params={"beta": 0.8}, reset="zero")
    torch.manual_seed(0)
    model = build(spec)
    torch.save(model.state_dict(), tmp_path / "init.pt")
    write_json(tmp_path / "arch.json", spec)
    x = (torch.rand(10, 24, 12, generator=gen) < 0.3).float()
    y = torch.randint(0, 4, (24,), generator=gen)
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    return ["--arch", str(tmp_path / "arch.json"), "--init", str(tmp_path / "init.pt"), "--data",
            str(tmp_path / "data.pt"), "--batch-size", "8", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.5",
            "--scheduler", "none", "--device", "cpu"]


def test_sharded_loader_splits_global_batches():
    x, y = torch.arange(2 * 6).reshape(2, 6, 1).float(), torch.arange(6)
    shards = [list(ShardedLoader([(x, y)], r, 2)) for r in range(2)]
    assert torch.equal(shards[0][0][0], x[:, :3]) and torch.equal(shards[1][0][1], y[3:])
    with pytest.warns(UserWarning, match="not divisible"):
        assert list(ShardedLoader([(x[:, :5], y[:5])], 0, 2)) == []
    with pytest.raises(ValueError, match="outside world_size"):
        ShardedLoader([], 2, 2)


def test_torchrun_two_gloo_processes_match_single_process(tmp_path):
    common = _setup(tmp_path)
    # NEUROSYNTH_NO_CEXT: the workers use the pure-torch LIF loop (bit-identical) instead of loading the C++ kernel
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "NEUROSYNTH_NO_CEXT": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "neurosynth.apps.ddp", "--out", str(tmp_path / "ddp"), *common]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "trained on 2 process(es) (gloo, cpu)" in proc.stdout
    main(["--out", str(tmp_path / "single"), *common])  # same global batches, one process

    ddp = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "model.pt", weights_only=True)
    init = torch.load(tmp_path / "init.pt", weights_only=True)
    assert ddp.keys() == single.keys()
    moved = max(float((single[k] - init[k]).abs().max()) for k in single)
    assert moved > 1e-2  # 6 SGD steps really changed the weights
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-5, atol=1e-5)


def test_single_process_digits_run_says_its_test_score_is_the_last_epoch(tmp_path, capsys):
    """No validation split in the DDP app: it tests the model of the last epoch, once, and its metrics say so."""
    import json

    assert main(["--out", str(tmp_path / "run"), "--epochs", "1", "--hidden", "16", "--T", "5", "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["selection_rule"] == "last" and metrics["chosen_epoch"] == 1 and 0 <= metrics["test_accuracy"] <= 1
    assert "(the last epoch, read once)" in capsys.readouterr().out
