"""Dataset entries carry their facts (shape of a sample, classes, modality, splits, root, default T) and the
applications ask the entry: a dataset registered here, in this file only, works with ``train``, ``search mse``'s
data loading, BioNAS, the attacks, the Loihi check, ``data list`` and ``data info``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from neurosynth.apps.cli import main
from neurosynth.datasets import DATASETS, DatasetEntry, entries, load, register_dataset
from neurosynth.datasets.static import EncodedImages

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"

# ------------------------------------------------------------------ a new dataset, registered in this file only

TOY_N = {"train": 48, "test": 24}


def _toy_loader(root=None, split="train", *, T=None, encoding="direct", seed=0, flatten=False, limit=None,
                download=False, cache=None, **encoder_kwargs):
    """6x6 grey images of 3 classes: class c lights up row 2c (plus noise); the static-loader contract."""
    if split not in TOY_N:
        raise ValueError(f"dataset 'toy' has splits ['train', 'test'], not '{split}'")
    n = TOY_N[split]
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 6, 6, generator=g) * 0.2
    x[torch.arange(n), 0, 2 * y, :] = 1.0
    images = x.reshape(n, 36) if flatten else x
    return EncodedImages("toy", split, images[:limit], y[:limit], ["top", "middle", "bottom"], T, encoding, seed,
                         encoder_kwargs)


@pytest.fixture
def toy():
    entry = register_dataset(DatasetEntry("toy", "static", _toy_loader, "toy: 6x6 grey images, 3 classes",
                                          input_shape=(1, 6, 6), n_classes=3, needs_root=False,
                                          default_encoding="direct"))
    yield entry
    DATASETS._entries.pop("toy")  # the registry has no removal: tests only


def test_toy_dataset_in_data_list_and_info(toy, capsys):
    assert main(["data", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["toy"] == ["toy", "image", "1x6x6", "3", "train,test", "not", "needed"]
    assert rows["shd"][:4] == ["shd", "audio", "700", "20"] and rows["cifar100"][3] == "100"
    assert rows["nfashion_mnist"][-2:] == ["default", "folder"]
    assert main(["data", "info", "toy"]) == 0
    out = capsys.readouterr().out
    assert "toy: toy: 6x6 grey images" in out and "train: 48 samples" in out and "test: 24 samples" in out
    assert "sample shape: (1, 6, 6)" in out and "classes: 3 (top, middle, bottom)" in out


def test_toy_dataset_trains_with_the_conv_recipe(toy, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "toy", "--epochs", "1", "--channels", "2", "--hidden", "8", "--T", "2",
                 "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    arch = json.loads((out / "arch.json").read_text())
    assert arch["input_shape"] == [1, 6, 6]
    outs = [la["out_features"] for la in arch["layers"] if la["type"] == "linear"]
    assert outs[-1] == 3  # the class count came from the dataset
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == "toy (train 42, validation 6, test 24)" and m["test_samples"] == 24


def test_toy_dataset_searched_by_mse(toy, tmp_path):
    out = tmp_path / "search"
    assert main(["search", "mse", "--dataset", "toy", "--T", "2", "--population", "2", "--generations", "1",
                 "--fitness-batch", "12", "--out", str(out), "--no-progress"]) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["input_shape"] == [1, 6, 6] and best["num_classes"] == 3


def test_toy_dataset_in_mse_bionas_attacks_and_loihi_check(toy):
    from neurosynth.apps.cli.export_loihi import verification_data
    from neurosynth.apps.cli.robustness import _image_datasets, _infer_dataset, _load_data
    from snn_nas.bionas.data import load_image_data
    from snn_nas.mse.data import load_task, test_samples

    task = load_task("toy", T=3, conv=True, encoding="rate", seed=2)
    assert task.x_train.shape == (3, 48, 1, 6, 6) and task.num_classes == 3 and task.input_shape == [1, 6, 6]
    ref = _toy_loader(split="train", T=3, encoding="rate", seed=2)
    assert torch.equal(task.x_train[:, 5], ref[5][0]) and task.y_train.tolist() == ref.targets.tolist()
    flat = load_task("toy", T=2, conv=False, limit=10)
    assert flat.x_train.shape == (2, 10, 36) and flat.x_test.shape == (2, 10, 36)
    x, y = test_samples("toy", 5, T=2, conv=False)
    assert x.shape == (2, 5, 36) and y.tolist() == [0, 1, 2, 0, 1]

    data = load_image_data("toy", limit_train=20)
    assert data.input_shape == [1, 6, 6] and data.num_classes == 3 and len(data.y_train) == 20
    assert len(data.y_test) == 24 and float(data.x_train.max()) == 1.0

    assert "toy" in _image_datasets() and _infer_dataset([1, 6, 6]) == "toy" and _infer_dataset([36]) == "toy"
    assert _infer_dataset([1, 28, 28]) == "fashion_mnist" and _infer_dataset([3, 32, 32]) == "cifar10"
    assert _infer_dataset([64]) == "digits" and _infer_dataset([5]) == "digits"
    xtr, ytr, xte, yte, k = _load_data("toy", None, 4)
    assert xtr.shape == (48, 1, 6, 6) and xte.shape == (4, 1, 6, 6) and k == 3 and yte.tolist() == [0, 1, 2, 0]

    spikes, labels = verification_data((36,), 4, dataset="toy", steps=3, encoder="rate", seed=0)
    assert spikes.shape == (3, 4, 36) and labels.tolist() == [0, 1, 2, 0]
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_digits_seen_by_the_apps_is_the_one_split():
    """Asking the entry instead of calling the digits helpers gives the same tensors (equivalence with before)."""
    from neurosynth.apps.cli.export_loihi import verification_data
    from neurosynth.apps.cli.robustness import _load_data
    from neurosynth.datasets.digits import load_digits_split
    from neurosynth.encoding import encode
    from snn_nas.bionas.data import load_image_data

    xtr, ytr, xte, yte = load_digits_split(image=True)
    a = _load_data("digits", None, 7)
    assert torch.equal(a[0], xtr) and torch.equal(a[1], ytr) and torch.equal(a[2], xte[:7]) and a[4] == 10
    b = load_image_data("digits")
    assert torch.equal(b.x_train, xtr) and torch.equal(b.y_test, yte) and b.num_classes == 10
    for shape in ((64,), (1, 8, 8)):
        x, y = verification_data(shape, 5, dataset="digits", steps=4, encoder="rate", seed=3)
        want = encode("rate", xte[:5].reshape(5, *shape), 4, generator=torch.Generator().manual_seed(3))
        assert torch.equal(x, want.float()) and torch.equal(y, yte[:5])


def test_unknown_or_non_image_dataset_errors_name_the_choices(tmp_path, capsys):
    from neurosynth.errors import UserError
    from snn_nas.bionas.data import load_image_data

    with pytest.raises(UserError, match=r"choose one of \('cifar10', 'cifar100', 'digits', 'fashion_mnist'\)"):
        load_image_data("shd")
    with pytest.raises(UserError, match=r"cifar100 needs --data-root DIR \(the folder holding cifar-100-python\)"):
        load_image_data("cifar100")
    assert main(["data", "info", "nope"]) == 2
    assert "unknown dataset 'nope'; registered datasets: cifar10" in capsys.readouterr().err
    assert main(["data", "info", "shd"]) == 2
    assert "dataset 'shd' needs --data-root DIR" in capsys.readouterr().err


# ------------------------------------------------------------------ the facts agree with the loaders


def test_event_entries_agree_with_their_specs():
    from neurosynth.datasets.binning import downsampled_size, frame_shape
    from neurosynth.datasets.events import EVENT_SPECS

    events = entries(kind="events")
    assert {e.name for e in events} == set(EVENT_SPECS)
    for e in events:
        spec = EVENT_SPECS[e.name]
        b = spec.default_binning
        shape = frame_shape(downsampled_size(spec.sensor_size, b.spatial_factor), spec.has_y)
        per_step = shape if spec.has_y else (shape[0] * shape[1],)
        assert e.input_shape == per_step, e.name
        assert (e.n_classes, e.splits, e.default_T) == (len(spec.classes), spec.splits, b.T), e.name
        assert e.modality == ("events" if spec.has_y else "audio"), e.name


def test_static_entries_agree_with_loaded_samples(tmp_path):
    from neurosynth.datasets.testing import write_fake_cifar, write_fake_fashion_mnist

    write_fake_fashion_mnist(tmp_path / "f", 6, 3, seed=0)
    write_fake_cifar(tmp_path / "c", 4, 2, seed=0)
    write_fake_cifar(tmp_path / "c", 4, 2, seed=0, name="cifar100")
    roots = {"digits": None, "fashion_mnist": tmp_path / "f", "cifar10": tmp_path / "c", "cifar100": tmp_path / "c"}
    assert {e.name for e in entries(kind="static")} == set(roots)
    for name, root in roots.items():
        e = DATASETS.get(name)
        assert e.is_image and e.needs_root == name.startswith("cifar"), name
        ds = load(name, root, "test", T=None, flatten=False)
        assert tuple(ds[0][0].shape) == e.input_shape and ds.n_classes == e.n_classes, name
        flat = load(name, root, "test", T=2, flatten=True, limit=2)
        assert len(flat) == 2 and tuple(flat[0][0].shape) == (2, e.input_size), name
        assert torch.equal(flat.images[1], ds.images[1].reshape(-1)), name
    digits = load("digits")  # the entry's defaults: T=20, rate-encoded
    assert digits.T == DATASETS.get("digits").default_T and digits.encoding == DATASETS.get("digits").default_encoding


def test_event_entries_agree_with_loaded_samples(tmp_path):
    from neurosynth.datasets.testing import write_fake_dvs_gesture, write_fake_nmnist, write_fake_shd

    write_fake_shd(tmp_path, 3, 2, seed=0)
    write_fake_dvs_gesture(tmp_path, 2, 1, seed=0, max_events=200)
    write_fake_nmnist(tmp_path, 2, 1, seed=0, max_events=100)
    for name in ("shd", "dvs_gesture", "nmnist"):
        e = DATASETS.get(name)
        x, _ = load(name, tmp_path, "test", cache=False)[0]
        assert tuple(x.shape) == (e.default_T, *e.input_shape), name


def test_root_rules_come_from_the_entry(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="dataset 'shd' needs root="):
        load("shd")
    monkeypatch.setenv("NEUROSYNTH_DATA", str(tmp_path / "ns"))
    nf = DATASETS.get("nfashion_mnist")
    assert not nf.needs_root and nf.resolve_root(None) == tmp_path / "ns" and nf.resolve_root("x") == "x"
    assert DATASETS.get("digits").resolve_root(None) is None
    assert len(set(entries())) == len(DATASETS)  # entries are hashable values (the offline options stay out)
    with pytest.raises(ValueError, match="modality must be one of"):
        DatasetEntry("x", "static", _toy_loader, "x", modality="video")
    with pytest.raises(ValueError, match="kind must be one of"):
        DatasetEntry("x", "frames", _toy_loader, "x")


# ------------------------------------------------------------------ the package has no import circle


def _imports(path: Path) -> set[str]:
    """The ``datasets`` modules ``path`` imports, at the top or inside functions (``"__init__"`` = the package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1:
                if mod:
                    out.add(mod.split(".")[0])
                else:  # from . import x: a submodule or a name of the package
                    out |= {a.name if (DATASETS_DIR / f"{a.name}.py").exists() else "__init__" for a in node.names}
            elif mod.startswith("neurosynth.datasets"):
                rest = mod[len("neurosynth.datasets"):].lstrip(".")
                out.add(rest.split(".")[0] if rest else "__init__")
        elif isinstance(node, ast.Import):
            out |= {a.name[len("neurosynth.datasets."):].split(".")[0] for a in node.names
                    if a.name.startswith("neurosynth.datasets.")}
    return out - {path.stem}


def test_datasets_has_no_import_circle():
    graph = {p.stem: _imports(p) for p in DATASETS_DIR.glob("*.py")}
    assert graph["events"] >= {"binning", "cache", "errors", "location", "nfashion"}  # the parser sees lazy imports
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        if node in path:
            raise AssertionError(f"import circle in datasets/: {' -> '.join(path[path.index(node):] + (node,))}")
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + (node,))
        done.add(node)

    for name in sorted(graph):
        visit(name, ())
