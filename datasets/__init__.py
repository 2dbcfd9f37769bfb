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

Every dataset is one :class:`DatasetEntry` in :data:`DATASETS`: its loader and its facts (shape of a sample,
class count, modality, splits, whether it needs a root folder, default ``T`` and encoding). The applications
(``neurosynth train|data|robustness|energy|export``, the searches) ask the entry, never the name, so a new
dataset is one ``register_dataset(DatasetEntry(...))`` call (see ``docs/CONTRACTS.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from neurosynth.registry import Registry

from .binning import Binning, bin_events, downsampled_size
from .errors import CorruptFileError, DatasetNotFoundError

KINDS = ("events", "static")  # how the loader builds a sample: binned events | an (encoded) static tensor
MODALITIES = ("image", "events", "audio", "tabular")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: ``loader(root, split, download=..., **options)`` and the facts the applications use.

    ``kind``: ``"static"`` loaders return an ``EncodedImages``-like dataset (``.images``, ``.targets``,
    ``.n_classes``, ``.batches()``) and take ``T``, ``encoding``, ``seed``, ``flatten`` and ``limit``;
    ``"events"`` loaders return :class:`~neurosynth.datasets.events.EventFrames` and take :class:`Binning`
    fields. ``input_shape`` is one time step of one sample: ``[C, H, W]`` for images (``flatten=True`` gives
    their product), ``[P, H, W]`` for cameras at the default binning, ``[channels]`` for spiking audio,
    ``[features]`` for tabular data. ``modality`` is what the data is (``image``, ``events``, ``audio`` spike
    trains, ``tabular``).
    """

    name: str
    kind: str  # "events" | "static"
    loader: Callable
    description: str
    input_shape: tuple[int, ...] = ()
    n_classes: int = 0
    modality: str = "image"
    splits: tuple[str, ...] = ("train", "test")  # the splits on disk (what `data info` reports)
    needs_root: bool = True  # False: root=None works (offline data, a system folder, or default_root)
    default_root: Callable[[], Path] | None = None  # the folder used for root=None
    root_help: str = "the folder holding the data"
    default_T: int | None = None  # time steps of a sample with the default options (None: no time axis)
    default_encoding: str | None = None  # static data: how the loader encodes over T by default
    generated: str = ""  # how the data is synthesised locally, when it is (empty: read from files)
    # load() keywords that make loading read what is on disk and never generate or download it
    offline: dict = field(default_factory=dict, hash=False)
    # hooks of `neurosynth data` for datasets generated on first use (all take the resolved root):
    existing: Callable | None = None  # (root, split) -> load() options matching data already generated
    info: Callable | None = None  # root -> lines of `data info` (instead of loading each split)
    notes: Callable | None = None  # root -> extra lines of `data info` after the splits
    figure: Callable | None = None  # (root, split, index, title) -> Figure of `data plot`

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"dataset '{self.name}': kind must be one of {KINDS}, got {self.kind!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"dataset '{self.name}': modality must be one of {MODALITIES}, got {self.modality!r}")

    @property
    def is_image(self) -> bool:
        """A static image dataset (``[C, H, W]`` samples): what the conv recipes, BioNAS and the attacks take."""
        return self.kind == "static" and self.modality == "image" and len(self.input_shape) == 3

    @property
    def input_size(self) -> int:
        """Number of inputs of one time step (the flattened ``input_shape``)."""
        return math.prod(self.input_shape)

    def matches(self, shape) -> bool:
        """Whether a network taking ``shape`` per step reads this dataset (``input_shape`` or its flattening)."""
        shape = tuple(int(s) for s in shape)
        return bool(self.input_shape) and shape in (tuple(self.input_shape), (self.input_size,))

    def resolve_root(self, root):
        """``root``, or the entry's default folder; ``None`` when the loader reads without a folder."""
        if root is None and self.default_root is not None:
            return self.default_root()
        return root


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(entry: DatasetEntry, *, overwrite: bool = False) -> DatasetEntry:
    """Add ``entry`` to :data:`DATASETS` (under ``entry.name``)."""
    return DATASETS.add(entry.name, entry, overwrite=overwrite)


def entries(**facts) -> list[DatasetEntry]:
    """Registered entries (sorted by name) whose attributes equal ``facts``, e.g. ``entries(is_image=True)``."""
    return [e for _, e in DATASETS.items() if all(getattr(e, k) == v for k, v in facts.items())]


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


def _fashion_loader(root=None, split="train", **kw):
    from .fashion import load_fashion_mnist

    return load_fashion_mnist(root, split, **kw)


def _spoken_digits_loader(root, split="train", **kw):
    from .spoken_digits import load_spoken_digits

    return load_spoken_digits(root, split, **kw)


def _user_data_dir() -> Path:
    from .fashion import user_data_dir

    return user_data_dir()


def _nfashion_existing(root, split):
    from .nfashion import existing_settings

    return existing_settings(root, split)


def _nfashion_info(root):
    from .nfashion import info_lines

    return info_lines(root)


def _spoken_digits_notes(root):
    from .spoken_digits import info_lines

    return info_lines(root)


def _spoken_digits_figure(root, split, index, title):
    from .spoken_digits import figure

    return figure(root, split, index, title)


_SHD = "the folder holding SHD/shd_{train,test}.h5"
for _name, _desc, _shape, _n, _modality, _T, _help, _splits in (
    ("shd", "Spiking Heidelberg Digits: 700 channels, 20 classes (tonic SHD)", (700,), 20, "audio", 100, _SHD,
     ("train", "test")),
    ("ssc", "Spiking Speech Commands: 700 channels, 35 classes (tonic SSC)", (700,), 35, "audio", 100,
     "the folder holding SSC/ssc_{train,valid,test}.h5", ("train", "valid", "test")),
    ("dvs_gesture", "DVS128 Gesture: 128x128x2 events, 11 classes (tonic DVSGesture)", (2, 32, 32), 11, "events",
     16, "the folder holding DVSGesture/ibmGesture{Train,Test}", ("train", "test")),
    ("nmnist", "N-MNIST: 34x34x2 events, 10 classes (tonic NMNIST)", (2, 34, 34), 10, "events", 30,
     "the folder holding NMNIST/{Train,Test}", ("train", "test")),
    ("cifar10_dvs", "CIFAR10-DVS: 128x128x2 events, 10 classes (tonic CIFAR10DVS; needs the aedat package)",
     (2, 64, 64), 10, "events", 10, "the folder holding CIFAR10DVS/<class>/", ("train", "test")),
):
    register_dataset(DatasetEntry(_name, "events", _event_loader(_name), _desc, _shape, _n, _modality, _splits,
                                  root_help=_help, default_T=_T))
register_dataset(DatasetEntry(
    "nfashion_mnist", "events", _event_loader("nfashion_mnist"),
    "Neuromorphic Fashion-MNIST: 34x34x2 events simulated with N-MNIST saccades, 10 classes",
    (2, 34, 34), 10, "events", needs_root=False, default_root=_user_data_dir, default_T=10,
    root_help="the folder holding NFashionMNIST/ (default $NEUROSYNTH_DATA, ~/.cache/neurosynth)",
    generated="on first load: Fashion-MNIST through the simulated event camera (neurosynth.datasets.nfashion)",
    existing=_nfashion_existing, info=_nfashion_info, offline={"generate_missing": False},
))
for _name, _n, _folder in (("cifar10", 10, "cifar-10-batches-py"), ("cifar100", 100, "cifar-100-python")):
    register_dataset(DatasetEntry(_name, "static", _cifar_loader(_name), f"CIFAR-{_n} (torchvision)", (3, 32, 32),
                                  _n, root_help=f"the folder holding {_folder}", default_encoding="direct"))
register_dataset(DatasetEntry("digits", "static", _digits_loader, "scikit-learn 8x8 digits, spike-encoded",
                              (1, 8, 8), 10, needs_root=False, root_help="not needed: scikit-learn ships it",
                              default_T=20, default_encoding="rate"))
register_dataset(DatasetEntry(
    "fashion_mnist", "static", _fashion_loader,
    "Fashion-MNIST: 28x28 grey images, 10 classes (IDX files; Debian package)", (1, 28, 28), 10,
    splits=("train", "test"), needs_root=False, default_encoding="direct",  # (+ "fit"/"val": views of train)
    root_help="the folder of the Fashion-MNIST IDX files (default: the Debian package folder "
              "/usr/share/datasets/fashion-mnist)",
))
register_dataset(DatasetEntry(
    "spoken_digits", "events", _spoken_digits_loader,
    "synthetic spoken digits (espeak-ng + cochlea) in the SHD layout, 20 classes", (700,), 20, "audio",
    splits=("train", "valid", "test"), default_T=100, root_help="the folder holding SpokenDigits/ (neurosynth data generate spoken_digits)",
    generated="neurosynth data generate spoken_digits --data-root DIR (espeak-ng + cochlea)",
    offline={"generate_missing": False}, notes=_spoken_digits_notes, figure=_spoken_digits_figure,
))


def load(name: str, root=None, split: str = "train", *, download: bool = False, **kw):
    """Load dataset ``name`` from ``root`` as a torch ``Dataset`` of ``(x [T, ...], label)``.

    Event datasets take :class:`Binning` fields as keywords (``T``, ``dt`` in us, ``event_count``,
    ``origin``, ``spatial_factor``, ``denoise_us``, ``binary``) or ``binning=Binning(...)``, and
    ``cache=True|False|folder``. Static datasets take ``T``, ``encoding`` (``direct``/``rate``/``latency``),
    ``seed``, ``flatten`` and ``limit``. ``download=True`` fetches missing files (through tonic / torchvision).
    """
    entry = DATASETS.get(name)
    root = entry.resolve_root(root)
    if entry.needs_root and root is None:
        raise ValueError(f"dataset '{name}' needs root=<folder holding the data>")
    return entry.loader(root, split, download=download, **kw)


__all__ = [
    "DATASETS", "MODALITIES", "Binning", "CorruptFileError", "DatasetEntry", "DatasetNotFoundError", "bin_events",
    "collate_time_first", "downsampled_size", "entries", "load", "pad_time_first", "register_dataset",
]


def __getattr__(name: str):
    # the collate functions need torch: imported on first use, so that reading the registry (the CLI's --help
    # choices) stays free of torch
    if name in ("collate_time_first", "pad_time_first"):
        from . import collate

        return getattr(collate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

