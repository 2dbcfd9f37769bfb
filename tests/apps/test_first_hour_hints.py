"""Defaults and hints a new user meets in the first hour (issue 22): the fix named in each message."""

from __future__ import annotations

import pytest

from neurosynth.apps.cli import main


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fh") / "run"
    assert main(["train", "--epochs", "1", "--T", "4", "--hidden", "16", "--out", str(out), "--no-progress"]) == 0
    return out


def test_export_loihi_of_a_default_run_names_train_loihi(default_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["export", "loihi", "--model", str(default_run), "--out", str(tmp_path / "n.h5")]) == 2
    err = capsys.readouterr().err
    assert "neurosynth train --loihi" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "n.h5").exists()


def test_data_generate_names_the_same_data_root_data_info_takes(tmp_path, monkeypatch, capsys):
    # `data info spoken_digits --data-root D` and train_shd.py read D/SpokenDigits: the hint passes D itself
    import neurosynth.datasets.spoken_digits as sd

    fake = {"files": {"train": {"samples": 3}, "valid": {"samples": 1}, "test": {"samples": 2}},
            "voices": {"train": [1], "valid": [3], "test": [2]},
            "espeak_ng": "espeak-ng (stub)"}
    monkeypatch.setattr(sd, "generate", lambda root, opts, **kw: fake)
    assert main(["data", "generate", "spoken_digits", "--data-root", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"--dataset spoken_digits --data-root {tmp_path}\n" in out


def test_energy_prints_the_comparison_in_words():
    from neurosynth.apps.cli.energy import energy_sentence

    assert energy_sentence(0.0298, "loihi2", "gpu").startswith("the SNN uses 33.6x the energy of the ANN")
    assert energy_sentence(4.0, "loihi2", "gpu").startswith("the SNN uses 1/4 of the energy of the ANN")
    assert "ratio" not in energy_sentence(0.5, "a", "b")


def test_energy_command_prints_the_sentence(default_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["energy", "--model", str(default_run), "--out", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "energy ratio" not in out and ("the energy of the ANN" in out or "n/a" in out)


def test_export_nir_of_a_loihi_run_says_snntorch_cannot_read_its_delays(tmp_path, capsys):
    pytest.importorskip("nir")
    run = tmp_path / "lo"
    assert main(["train", "--loihi", "--epochs", "1", "--T", "8", "--hidden", "16", "--out", str(run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["export", "nir", "--model", str(run), "--out", str(tmp_path / "lo.nir")]) == 0
    out = capsys.readouterr().out
    assert "verified with neurosynth's own NIR reader" in out
    assert "not identical in snnTorch 1.0.0" in out and "Delay" in out
