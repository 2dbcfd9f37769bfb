"""Every tutorial in docs/tutorials runs as a plain script on its small settings (NEUROSYNTH_TUTORIAL_QUICK=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[2] / "docs" / "tutorials"
SLOW = {"01_first_snn.py", "04_loihi_deployment.py", "05_architecture_search.py"}  # > ~10 s on a loaded CPU


def _lessons():
    for p in sorted(TUTORIALS.glob("[0-9][0-9]_*.py")):
        marks = [pytest.mark.slow] if p.name in SLOW else []
        yield pytest.param(p, id=p.stem, marks=marks)


def test_there_are_five_to_seven_lessons_and_an_index():
    lessons = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert 5 <= len(lessons) <= 7
    index = (TUTORIALS / "README.md").read_text()
    assert all(name in index for name in lessons)


@pytest.mark.parametrize("path", list(_lessons()))
def test_tutorial_runs(path: Path, tmp_path):
    env = {**os.environ, "NEUROSYNTH_TUTORIAL_QUICK": "1", "NEUROSYNTH_TUTORIAL_OUT": str(tmp_path),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, f"{path.name} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert r.stdout.strip(), f"{path.name} printed nothing"
    assert "Traceback" not in r.stderr


def test_every_lesson_writes_under_runs_tutorials_by_default():
    # the index promises runs/tutorials/ (or $NEUROSYNTH_TUTORIAL_OUT); a temporary folder would lose the outputs
    for p in sorted(TUTORIALS.glob("[0-9][0-9]_*.py")):
        src = p.read_text()
        if "NEUROSYNTH_TUTORIAL_OUT" not in src:
            continue
        assert 'os.environ.get("NEUROSYNTH_TUTORIAL_OUT", "runs/tutorials")' in src, p.name
        assert not [ln for ln in src.splitlines() if "OUT" in ln and "mkdtemp" in ln], p.name


def test_lesson_02_trains_a_custom_neuron_from_the_command_line():
    # the lesson's claim: --plugin makes a registered neuron usable with the CLI's --neuron
    src = (TUTORIALS / "02_custom_neurons.py").read_text()
    assert '"--plugin"' in src and '"--neuron", "quadratic_lif"' in src
