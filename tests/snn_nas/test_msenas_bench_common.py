"""experiments/_msenas_common.py: the shared "distinct seeded specs + resumable results.jsonl" of the MSE-NAS
evidence benchmarks."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("_msenas_common", ROOT / "experiments" / "_msenas_common.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_msenas_common", mod)
    spec.loader.exec_module(mod)
    return mod


def test_sample_unique_is_distinct_reproducible_and_filtered(common):
    from snn_nas.engine import spec_hash

    space = common.loihi_space([1, 8, 8], 6, {"widths": [4, 8], "stem_widths": [4], "kernels": [1, 3],
                                              "depth": [1, 2], "max_nodes": 1})
    a = common.sample_unique(space, 12, seed=3)
    hashes = [spec_hash(s) for s in a]
    assert len(set(hashes)) == 12
    assert [spec_hash(s) for s in common.sample_unique(space, 12, seed=3)] == hashes
    assert [spec_hash(s) for s in common.sample_unique(space, 5, seed=3)] == hashes[:5]  # a prefix: runs can grow
    b = common.sample_unique(space, 4, seed=3, exclude=hashes[:2], accept=lambda s: s["cells"][-1]["width"] == 8)
    assert not {spec_hash(s) for s in b} & set(hashes[:2])
    assert all(s["cells"][-1]["width"] == 8 for s in b)
    with pytest.raises(RuntimeError, match="distinct"):
        common.sample_unique(space, 5, seed=0, accept=lambda s: False, max_tries=50)


def test_results_log_resumes_and_refuses_another_protocol(common, tmp_path):
    log = common.ResultsLog(tmp_path, protocol={"epochs": 2, "train_limit": 2000})
    log.append({"hash": "a", "acc": 0.5})
    log.append({"hash": "b", "acc": 0.6})
    with open(tmp_path / "results.jsonl", "a") as fh:
        fh.write('{"hash": "c", "ac')  # a row cut by kill -9
    again = common.ResultsLog(tmp_path, protocol={"train_limit": 2000, "epochs": 2})
    assert len(again) == 2 and "a" in again and "c" not in again
    assert [r["hash"] for r in again.ordered_hashes(["b", "c", "a"])] == ["b", "a"]
    with pytest.raises(SystemExit, match="epochs"):
        common.ResultsLog(tmp_path, protocol={"epochs": 3, "train_limit": 2000})
    assert json.loads((tmp_path / "protocol.json").read_text()) == {"epochs": 2, "train_limit": 2000}
    (tmp_path / "protocol.json").unlink()
    with pytest.raises(SystemExit, match="without protocol"):
        common.ResultsLog(tmp_path, protocol={"epochs": 2})
