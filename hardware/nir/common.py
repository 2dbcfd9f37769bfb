r"""NIR interchange, what both directions share: the time discretisation, the file I/O, the ``nir`` import.

NeuroSynth models <-> NIR graphs (Neuromorphic Intermediate Representation, Pedersen et al.,
Nat. Commun. 2024, https://www.nature.com/articles/s41467-024-52259-9).

Supported layers: ``nn.Linear`` (``nir.Affine`` with bias, ``nir.Linear`` without), ``nn.Conv2d`` (groups=1),
``nn.Flatten``, ``neurosynth.layers.SumPool2d`` / ``nn.AvgPool2d``, ``neurosynth.layers.Delay`` (``nir.Delay`` of
``steps * dt``), the neurons ``LIF``, ``CubaLIF``, ``LI``, ``IF``, and ``neurosynth.layers.Recurrent`` (LIF/CubaLIF/IF)
as NIR's recurrent subgraph ``input -> lif -> output``, ``lif <-> w_rec`` (snnTorch's RLeaky/RSynaptic structure).
:func:`from_nir` also reads the flat form ``<name>.lif <-> <name>.w_rec`` that snnTorch's ``export_to_nir`` writes.
Dropout/Identity are skipped. Both directions are registries (:data:`~neurosynth.hardware.nir.export.NIR_EXPORTERS` keyed by module type,
looked up along the MRO, in :mod:`.export`; :data:`~neurosynth.hardware.nir.importer.NIR_IMPORTERS` keyed by NIR
node type name, in :mod:`.importer`), so a new layer is one decorated function each way.

Time discretisation
-------------------
NIR neurons are continuous-time (``tau dv/dt = (v_leak - v) + R I``); ours are discrete-time
(``h[t] = beta v[t-1] + x[t]``). We use the forward-Euler mapping that snnTorch's NIR import/export uses,
with a step ``dt`` (default ``1e-4`` s, the value snnTorch hard-codes)::

    LIF / LI:  tau = dt / (1 - beta),      r = tau / dt,       v_leak = 0
    CubaLIF:   tau_syn = dt / (1 - alpha), w_in = tau_syn / dt,
               tau_mem = dt / (1 - beta),  r = tau_mem / dt,   v_leak = 0
    IF:        r = 1 (``v[t] = v[t-1] + x[t]``: the discrete reading snnTorch's importer assumes)

so that one Euler step of the NIR equation equals one step of our neuron exactly
(``v + dt/tau (-v + r I) = (1 - dt/tau) v + I``). Note this is *not* ``NeuronModel.from_tau``'s
``beta = exp(-dt/tau)``: the two agree only to first order in ``dt/tau``.

That is the ``snntorch`` form. The same step can also be written with ``r = 1`` and ``tau/dt`` multiplied into the
preceding ``Affine``/``Conv2d`` (the ``norse`` form); the default ``portable`` form folds layers with one ``tau``
and keeps ``r = tau/dt`` where ``tau`` varies (:data:`NIR_FORMS`, docs/nir_interop.md). :func:`from_nir` reads
every form, folding any extra input gain ``r dt/tau`` into the weights before the neuron.

Reset
-----
NIR resets to ``v_reset`` (we write 0) after a spike: our ``reset="zero"``. Reset-by-subtraction and no-reset
have no NIR primitive: :func:`to_nir` refuses them unless ``allow_nonstandard_reset=True``, in which case the
node still says ``v_reset = 0`` (what every other NIR consumer will do) and our convention is kept in the node's
``metadata["reset"]`` so :func:`from_nir` restores it. ``dt``, the reset and the discretisation are recorded in
the graph's and every neuron node's ``metadata``.

Exactness: weights are written as float32 arrays, time constants as float64. A graph written by
:func:`to_nir` reads back into an identical model, and that model exports to an identical graph (the
NIR -> model -> NIR round trip is exact for every graph whose parameters are float32-representable in our
discrete form; arbitrary float64 time constants come back to float32 precision).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from neurosynth.registry import Registry

DEFAULT_DT = 1e-4
DISCRETISATION = "forward-euler: beta = 1 - dt/tau, r = tau/dt (snnTorch convention)"
PRODUCER = "neurosynth"


@dataclasses.dataclass(frozen=True)
class NirForm:
    """How :func:`~neurosynth.hardware.nir.export.to_nir` writes the discrete step, chosen for the readers it serves.

    NIR's LIF/LI equation ``tau dv/dt = -v + r I`` lets the factor ``tau/dt`` that makes one Euler step equal our
    ``v = beta v + x`` sit either in the neuron (``r = tau/dt``, snnTorch's form) or in the weights before it
    (``r = 1``, the preceding ``Affine``/``Conv2d`` multiplied by ``tau/dt``). snnTorch 1.0 reads both but rescales
    its threshold with *one* value per layer (so it needs ``r = tau/dt`` when ``tau`` varies within a layer);
    Norse 1.1 ignores ``r`` on LIF/LI (so it needs ``r = 1``). ``fold``: ``"none"``, ``"uniform"`` (fold layers
    whose ``tau`` is one value: what both read) or ``"all"``. CubaLIF keeps ``r``/``w_in`` in every form: both honour
    them. A folded bias-free layer is written as an ``Affine`` with a zero bias. The matrix behind these choices:
    ``docs/nir_interop.md``.
    """

    name: str
    fold: str
    summary: str


NIR_FORMS: Registry[NirForm] = Registry("NIR form")
NIR_FORMS.add("portable", NirForm(
    "portable", fold="uniform",
    summary="r = 1 (tau/dt folded into the weights) where a layer has one tau, r = tau/dt where tau varies"))
NIR_FORMS.add("snntorch", NirForm(
    "snntorch", fold="none", summary="r = tau/dt in every neuron (snnTorch's own export form)"))
NIR_FORMS.add("norse", NirForm(
    "norse", fold="all", summary="r = 1 in every LIF/LI, tau/dt folded into the weights"))
DEFAULT_FORM = "portable"


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover - nir is a declared extra
        from neurosynth.errors import MissingExtraError

        raise MissingExtraError("nir", "nir", "NIR export/import") from e
    return nir



def _pair(v) -> tuple[int, int]:
    if isinstance(v, np.ndarray):
        v = v.reshape(-1).tolist()
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return int(v[0]), int(v[0])
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    d = decay.astype(np.float64)
    with np.errstate(divide="ignore"):
        return dt / (1.0 - d)


def _decay(tau: np.ndarray, dt: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 - dt / np.asarray(tau, dtype=np.float64)


# ----------------------------------------------------------------------------- files
def write_nir(graph, path: str | Path) -> Path:
    """Write a NIR graph to ``path`` atomically (temp file + rename)."""
    nir = _nir()
    from neurosynth.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return path


def read_nir(path: str | Path):
    """Read a ``.nir`` file, turning a missing or corrupt file into a clear ``ValueError``."""
    nir = _nir()
    path = Path(path)
    if not path.exists():
        raise ValueError(f"NIR file {path} does not exist")
    try:
        try:
            return nir.read(path)
        except ValueError as e:
            if "Type inference error" not in str(e):
                raise
            # Norse's and Sinabs' exporters record the sample batch axis in Input/Output types ([1, N] -> [N]),
            # which nir's type check rejects; the nodes themselves are fine and from_nir drops that axis
            return nir.read(path, type_check=False)
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path} is not a readable NIR file ({e}); re-export it with `neurosynth export nir`") from e
