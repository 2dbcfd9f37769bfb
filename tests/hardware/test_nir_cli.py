"""``neurosynth export nir``: writes a verified file and a manifest, refuses what NIR cannot express."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("nir")

from neurosynth.apps.cli import main  # noqa: E402
from neurosynth.arch import build, mlp_spec  # noqa: E402
from neurosynth.hardware.nir import from_nir, read_nir  # noqa: E402
from neurosynth.rundir import RunDir  # noqa: E402


def _run_dir(path, reset="zero"):
    torch.manual_seed(0)
    spec = mlp_spec(16, [12], 4, neuron="cubalif" if reset == "zero" else "lif", reset=reset)
    model = build(spec)
    RunDir(path).save_model(model, spec)
    return model


def test_export_nir_writes_a_verified_file_and_manifest(tmp_path, capsys):
    model = _run_dir(tmp_path / "run")
    out = tmp_path / "exp" / "net.nir"
    assert main(["export", "nir", "--model", str(tmp_path / "run"), "--out", str(out), "--verify", "4"]) == 0
    assert "Input -> Affine -> CubaLIF -> Affine -> CubaLIF -> Output" in capsys.readouterr().out
    back = from_nir(read_nir(out))
    x = (torch.rand(10, 3, 16, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    man = json.loads((tmp_path / "exp" / "net.nir.manifest.json").read_text())
    assert man["results"]["verify"] == {"samples": 4, "T": 20, "identical": True, "max_abs_diff": 0.0}
    assert man["results"]["dt"] == 1e-4 and man["config"]["model"] == str(tmp_path / "run")
    assert {"versions", "hardware", "timestamp", "git_commit"} <= set(man)


def test_export_nir_refuses_subtract_reset_and_writes_nothing(tmp_path, capsys):
    _run_dir(tmp_path / "run", reset="subtract")
    out = tmp_path / "net.nir"
    assert main(["export", "nir", "--model", str(tmp_path / "run"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--allow-nonstandard-reset" in err
    assert not out.exists()
    assert main(["export", "nir", "--model", str(tmp_path / "run"), "--out", str(out),
                 "--allow-nonstandard-reset"]) == 0
    assert read_nir(out).nodes["1"].metadata["reset"] == "subtract"


def test_export_nir_reports_a_missing_run(tmp_path, capsys):
    assert main(["export", "nir", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.nir")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_nir_for_a_reader_and_the_readers_message(tmp_path, capsys):
    torch.manual_seed(0)
    spec = mlp_spec(16, [12], 4, neuron="lif", reset="zero")
    model = build(spec)
    RunDir(tmp_path / "run").save_model(model, spec)
    outs = {}
    for form in ("portable", "snntorch", "norse"):
        out = tmp_path / f"{form}.nir"
        assert main(["export", "nir", "--model", str(tmp_path / "run"), "--out", str(out), "--for", form]) == 0
        outs[form] = capsys.readouterr().out
        g = read_nir(out)
        lif = g.nodes["1"]
        assert (abs(lif.r - 1).max() < 1e-12) == (form != "snntorch")  # one tau per layer: portable folds it
        man = json.loads((tmp_path / f"{form}.nir.manifest.json").read_text())
        assert man["results"]["form"] == form and man["results"]["verify"]["identical"]
    assert "runs identically in: neurosynth, snnTorch 1.0.0, Norse 1.1.0" in outs["portable"]
    assert "not identical in Norse 1.1.0" in outs["snntorch"] and "--for norse" in outs["snntorch"]
    with pytest.raises(SystemExit) as e:  # argparse: unknown choice
        main(["export", "nir", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "x.nir"), "--for", "lava"])
    assert e.value.code == 2 and not (tmp_path / "x.nir").exists()


def test_export_nir_killed_during_its_check_leaves_no_probe_beside_out(tmp_path):
    """kill -9 while the read-back check runs: the probe file lived in the system's temp folder, so nothing but
    (at most) the lock file is left beside --out, and a second export works."""
    import os
    import subprocess
    import sys

    from neurosynth.rundir import KILL_ENV

    _run_dir(tmp_path / "run")
    out = tmp_path / "exp" / "net.nir"
    out.parent.mkdir()
    argv = [sys.executable, "-m", "neurosynth", "export", "nir", "--model", str(tmp_path / "run"), "--out", str(out),
            "--verify", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", KILL_ENV: "export-nir:probe"}
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    left = sorted(p.name for p in out.parent.iterdir())
    assert not out.exists() and all(not (out.parent / n).is_dir() for n in left), left
    env.pop(KILL_ENV)
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and out.exists(), r.stderr[-2000:]
