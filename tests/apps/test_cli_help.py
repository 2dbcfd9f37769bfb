"""The CLI's shared behaviour: --help shows defaults, one --data-root name, one place for thread caps,
refused combinations."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from neurosynth.apps.cli import DEFAULT_THREADS, build_parser, main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _leaves(p: argparse.ArgumentParser, name: str = ""):
    if p._subparsers is None:
        yield name.strip(), p
        return
    for action in p._subparsers._group_actions:
        for sub, sp in action.choices.items():
            yield from _leaves(sp, f"{name} {sub}")


def test_every_command_help_shows_defaults():
    leaves = dict(_leaves(build_parser()))
    assert {"train", "demo", "energy", "convert", "robustness", "search mse", "search bio", "export loihi",
            "export nir", "data info", "data plot"} <= set(leaves)
    for name, p in leaves.items():
        for a in p._actions:
            if (not a.option_strings or a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction)
                    or a.default is None or a.default is False):
                continue
            f = p._get_formatter()
            f.add_argument(a)
            chunk = f.format_help()  # this option's entry in --help
            assert "default" in chunk, f"`neurosynth {name} --help`: {a.option_strings[0]} does not show its default"
    assert "(default: lif)" in " ".join(leaves["train"].format_help().split())  # --neuron


def test_threads_default_is_the_same_on_every_command():
    for name, p in _leaves(build_parser()):
        threads = [a for a in p._actions if "--threads" in a.option_strings]
        assert len(threads) == 1 and threads[0].default == DEFAULT_THREADS == 1, name
    assert build_parser().parse_args(["train", "--out", "x", "--threads", "3"]).threads == 3


def test_every_command_takes_plugin_and_the_top_level_help_lists_every_data_action(capsys):
    parser = build_parser()
    for name, p in _leaves(parser):
        assert any("--plugin" in a.option_strings for a in p._actions), name
    top = " ".join(parser.format_help().split())
    data = dict(_leaves(parser))
    actions = {n.split()[1] for n in data if n.startswith("data ")}
    assert {"list", "info", "plot", "generate", "encode-audio", "simulate-events"} <= actions
    assert all(a in top for a in actions), top


def test_version(capsys):
    from neurosynth import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"neurosynth {__version__}"


def test_threads_are_validated(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--threads", "0"]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err


def test_data_root_is_the_name_and_root_a_hidden_alias():
    parser = build_parser()
    for action in ("info", "plot"):
        extra = ["--out", "x.png"] if action == "plot" else []
        assert parser.parse_args(["data", action, "shd", "--data-root", "/d", *extra]).root == "/d"
        assert parser.parse_args(["data", action, "shd", "--root", "/d", *extra]).root == "/d"
        assert parser.parse_args(["data", action, "digits", *extra]).root is None
    text = dict(_leaves(parser))["data info"].format_help()
    assert "--data-root" in text and "--root " not in text


def test_data_info_without_root_names_data_root(capsys):
    assert main(["data", "info", "shd"]) == 2
    assert "--data-root DIR" in capsys.readouterr().err


def test_search_bio_refuses_epochs_within_warmup(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["search", "bio", "--epochs", "1", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--warmup 2" in err and "never" in err
    assert not out.exists()


def _example(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["train_shd", "train_dvs_gesture"])
def test_example_benchmark_needs_no_data_root(name, capsys):
    mod = _example(name)
    assert mod.parse_args(["--benchmark", "2"]).benchmark == 2
    with pytest.raises(SystemExit) as e:
        mod.parse_args([])
    assert e.value.code == 2 and "--data-root DIR is required" in capsys.readouterr().err
