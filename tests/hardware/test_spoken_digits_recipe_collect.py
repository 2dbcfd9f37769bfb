"""``benchmarks/spoken_digits_recipe.py``: the seeds of one recipe must be the same recipe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from neurosynth.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _collector():
    spec = importlib.util.spec_from_file_location("spoken_digits_recipe", ROOT / "benchmarks" / "spoken_digits_recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(name, hidden=256, dt=10.0, epochs=80):
    return {"run": name, "model": {"arch": "recurrent", "hidden": hidden, "layers": 2}, "input": {"dt_ms": dt},
            "epochs": epochs, "seed": 0}


def test_seeds_of_one_recipe_must_share_network_input_and_epochs():
    check = _collector().check_same_recipe
    check("--loihi", [_run("a"), _run("b"), _run("c")])
    with pytest.raises(UserError, match=r"c differs from a in model \{'hidden': \(256, 512\)\}"):
        check("--loihi", [_run("a"), _run("b"), _run("c", hidden=512)])
    with pytest.raises(UserError, match="differs from a in input"):
        check("--float", [_run("a"), _run("b", dt=20.0)])
    with pytest.raises(UserError, match=r"in epochs \(80, 60\)"):
        check("--float", [_run("a"), _run("b", epochs=60)])
