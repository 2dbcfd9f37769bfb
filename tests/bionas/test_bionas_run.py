"""The BioNAS workflow in the library (`snn_nas.bionas.run`) behind the thin `neurosynth search bio`."""

import dataclasses

import pytest

from neurosynth.errors import UserError
from snn_nas.bionas.run import BioSearchConfig, check_config, run_search


def test_cli_defaults_are_the_library_defaults():
    """Every option of `search bio` fills the config field of the same name, with the same default."""
    from neurosynth.apps.cli import build_parser

    args = build_parser().parse_args(["search", "bio", "--out", "x"])
    for f in dataclasses.fields(BioSearchConfig):
        if f.name == "progress":
            assert args.no_progress is (not f.default)
        elif f.name != "out":
            assert getattr(args, f.name) == f.default, f.name


@pytest.mark.parametrize("kw, message", [
    ({"method": "sgd"}, "unknown --method 'sgd'"),
    ({"rules": "fa,bogus"}, "unknown learning rule 'bogus'"),
    ({"population": 0}, "--population must be >= 1"),
    ({"epochs": 2, "warmup": 2}, "would never search"),
    ({"arch_lr": 0.0}, "--arch-lr must be > 0"),
    ({"train_best": -1}, "--train-best must be >= 0"),
])
def test_bad_config_is_one_user_error_and_writes_nothing(tmp_path, kw, message):
    cfg = BioSearchConfig(out=str(tmp_path / "s"), **kw)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        check_config(cfg)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        run_search(cfg)
    assert list(tmp_path.iterdir()) == []


def test_derived_depths_and_skip_cap():
    assert (BioSearchConfig("o", space="darts").search_layers, BioSearchConfig("o", space="darts").derived_layers) == (3, 5)
    assert (BioSearchConfig("o").search_layers, BioSearchConfig("o").derived_layers) == (1, 1)
    assert BioSearchConfig("o", layers=2, eval_layers=4).search_layers == 2
    assert BioSearchConfig("o", max_skip=-1).skip_cap is None and BioSearchConfig("o").skip_cap == 2
