"""The examples as a new user meets them: one `error:` line like the CLI, defaults in --help, and the SHD model
reaching snnTorch through NIR (--reset zero --readout count); `export nir` says which tools read the file."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(f"_example_fh_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", ["train_shd", "train_dvs_gesture"])
def test_example_device_cuda_without_cuda_is_one_error_line(name, capsys):
    from neurosynth.errors import run_script

    mod = _example(name)
    assert run_script(mod.main, ["--benchmark", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: --device cuda was requested but no CUDA device is available; use --device cpu"]


@pytest.mark.parametrize("name", ["train_shd", "train_dvs_gesture"])
def test_example_option_mistake_is_one_error_line_and_exit_2(name, tmp_path, capsys):
    """`--verify` without `--loihi` is a user's mistake: exit status 2 and one line, like the CLI (was status 1)."""
    from neurosynth.errors import run_script

    mod = _example(name)
    assert run_script(mod.main, ["--data-root", str(tmp_path), "--verify", "4"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: --verify needs --loihi"]


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.py")))
def test_example_help_shows_defaults(name, monkeypatch, capsys):
    # every example's --help shows each option's default, as the CLI's does
    captured = {}
    real = argparse.ArgumentParser.parse_args

    def grab(self, *a, **k):
        captured["p"] = self
        raise SystemExit(0)

    from neurosynth.neurons import NEURONS

    monkeypatch.setattr(NEURONS, "_entries", dict(NEURONS._entries))  # an example's neuron leaves with the test
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    mod = _example(name)
    entry = getattr(mod, "main", None) or getattr(mod, "parse", None)
    with contextlib.suppress(SystemExit):
        try:
            entry([])
        except TypeError:
            entry()
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", real)
    p = captured["p"]
    for a in p._actions:
        if (not a.option_strings or a.default in (None, False, argparse.SUPPRESS) or a.help == argparse.SUPPRESS
                or isinstance(a, argparse._HelpAction)):
            continue
        f = p._get_formatter()
        f.add_argument(a)
        assert "default" in f.format_help(), f"examples/{name}.py --help: {a.option_strings[0]} hides its default"


def test_shd_model_with_zero_reset_and_count_readout_imports_into_snntorch():
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    from neurosynth.apps.cli.export_nir import readers_message
    from neurosynth.hardware.nir import to_nir

    mod = _example("train_shd")
    args = mod.parse_args(["--benchmark", "1", "--hidden", "8", "--reset", "zero", "--readout", "count"])
    graph = to_nir(mod.build_model_from(args, n_in=12), (12,))
    assert "snnTorch 1.0.0" in readers_message(graph).splitlines()[0]  # "runs identically in: ..."
    with contextlib.redirect_stdout(io.StringIO()):
        import_from_nir(graph)  # builds without error
    default = mod.build_model_from(mod.parse_args(["--benchmark", "1", "--hidden", "8"]), n_in=12)
    with pytest.raises(ValueError, match="reset"):
        to_nir(default, (12,))  # subtract reset: refused (rightly); --reset zero is the way


def test_export_message_names_the_readers_of_a_loihi_model_with_delays():
    pytest.importorskip("nir")
    from neurosynth.apps.cli.export_nir import readers_message
    from neurosynth.hardware.nir import to_nir

    mod = _example("train_shd")
    args = mod.parse_args(["--benchmark", "1", "--hidden", "8", "--loihi"])
    msg = readers_message(to_nir(mod.build_model_from(args, n_in=12), (12,)))
    assert "not identical in snnTorch 1.0.0" in msg and "Delay" in msg


def test_docs_name_snntorchs_importer_by_its_module():
    docs = Path(__file__).resolve().parents[2] / "docs"
    for p in docs.rglob("*.md"):
        assert "snntorch.import_from_nir" not in p.read_text(), p  # it is snntorch.import_nir.import_from_nir
