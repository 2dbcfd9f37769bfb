"""``neurosynth.datasets``: SNN datasets as time-first tensors through one entry point.

>>> from neurosynth.datasets import load, collate_time_first
>>> train = load("shd", "~/data", "train")                 # x: [100, 700] float32 spike counts, y: int
>>> gest = load("dvs_gesture", "~/data", "train", T=16, spatial_factor=0.25)   # x: [16, 2, 32, 32]
>>> loader = torch.utils.data.DataLoader(train, batch_size=64, collate_fn=collate_time_first)
>>> x, y, lengths = next(iter(loader))                      # x: [T, B, ...]

Datasets (``DATASETS.names()``): ``shd``, ``ssc``, ``dvs_gesture``, ``nmnist``, ``cifar10_dvs`` (event data
read by tonic, binned by :class:`Binning`, cached on disk), ``cifar10``, ``cifar100`` (torchvision) and
``digits`` (scikit-learn, offline), ``fashion_mnist`` (IDX files; ``root=None`` reads the Debian package's
folder), ``nfashion_mnist`` (Fashion-MNIST through the simulated event camera of :mod:`.event_camera`,
generated once into ``root``) and ``spoken_digits`` (synthetic speech generated locally with espeak-ng and the
cochlea of :mod:`.cochlea`, in the SHD layout). Nothing is downloaded unless ``download=True``; a missing
dataset raises :class:`DatasetNotFoundError` naming the path, the files and the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from neurosynth.registry import Registry

from .binning import Binning, bin_events, downsampled_size
from .collate import collate_time_first, pad_time_first
from .errors import CorruptFileError, DatasetNotFoundError


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: str  # "events" | "static"
    loader: Callable
    description: str


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def _event_loader(name: str):
    def loader(root, split="train", **kw):
        from .events import load_events

        return load_events(name, root, split, **kw)

    return loader


def _cifar_loader(name: str):
    def loader(root, split="train", **kw):
        from .static import load_cifar

        return load_cifar(name, root, split, **kw)

    return loader


def _digits_loader(root=None, split="train", **kw):
    from .static import load_digits

    return load_digits(root, split, **kw)


for _name, _desc in (
    ("shd", "Spiking Heidelberg Digits: 700 channels, 20 classes (tonic SHD)"),
    ("ssc", "Spiking Speech Commands: 700 channels, 35 classes (tonic SSC)"),
    ("dvs_gesture", "DVS128 Gesture: 128x128x2 events, 11 classes (tonic DVSGesture)"),
    ("nmnist", "N-MNIST: 34x34x2 events, 10 classes (tonic NMNIST)"),
    ("cifar10_dvs", "CIFAR10-DVS: 128x128x2 events, 10 classes (tonic CIFAR10DVS; needs the aedat package)"),
    ("nfashion_mnist", "Neuromorphic Fashion-MNIST: 34x34x2 events simulated with N-MNIST saccades, 10 classes"),
):
    DATASETS.add(_name, DatasetEntry(_name, "events", _event_loader(_name), _desc))
DATASETS.add("cifar10", DatasetEntry("cifar10", "static", _cifar_loader("cifar10"), "CIFAR-10 (torchvision)"))
DATASETS.add("cifar100", DatasetEntry("cifar100", "static", _cifar_loader("cifar100"), "CIFAR-100 (torchvision)"))
DATASETS.add("digits", DatasetEntry("digits", "static", _digits_loader, "scikit-learn 8x8 digits, spike-encoded"))


def _fashion_loader(root=None, split="train", **kw):
    from .fashion import load_fashion_mnist

    return load_fashion_mnist(root, split, **kw)


DATASETS.add("fashion_mnist", DatasetEntry("fashion_mnist", "static", _fashion_loader,
                                           "Fashion-MNIST: 28x28 grey images, 10 classes (IDX files; Debian package)"))


def _spoken_digits_loader(root, split="train", **kw):
    from .spoken_digits import load_spoken_digits

    return load_spoken_digits(root, split, **kw)


DATASETS.add("spoken_digits", DatasetEntry("spoken_digits", "events", _spoken_digits_loader,
                                           "synthetic spoken digits (espeak-ng + cochlea) in the SHD layout, 20 classes"))


def load(name: str, root=None, split: str = "train", *, download: bool = False, **kw):
    """Load dataset ``name`` from ``root`` as a torch ``Dataset`` of ``(x [T, ...], label)``.

    Event datasets take :class:`Binning` fields as keywords (``T``, ``dt`` in us, ``event_count``,
    ``origin``, ``spatial_factor``, ``denoise_us``, ``binary``) or ``binning=Binning(...)``, and
    ``cache=True|False|folder``. Static datasets take ``T``, ``encoding`` (``direct``/``rate``/``latency``)
    and ``seed``. ``download=True`` fetches missing files (through tonic / torchvision).
    """
    entry = DATASETS.get(name)
    if entry.name == "nfashion_mnist" and root is None:
        from .fashion import user_data_dir

        root = user_data_dir()
    if entry.name not in ("digits", "fashion_mnist") and root is None:
        raise ValueError(f"dataset '{name}' needs root=<folder holding the data>")
    return entry.loader(root, split, download=download, **kw)


__all__ = [
    "DATASETS", "Binning", "CorruptFileError", "DatasetEntry", "DatasetNotFoundError", "bin_events",
    "collate_time_first", "downsampled_size", "load", "pad_time_first",
]
