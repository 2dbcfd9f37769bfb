r"""Training-free fitness of an untrained spiking network from its representational dissimilarity matrices.

The candidate is built with its seed, run once (``torch.no_grad``, batch-norm on batch statistics) on a fixed
batch of ``B`` inputs, and every spiking layer ``l`` (stem and each motif neuron) gives binary patterns
:math:`s_i^{l,t} \in \{0,1\}^{N_l}` for sample ``i`` and step ``t``. Notation used by the scores:

* layer pattern :math:`v_i^l = [s_i^{l,1}, \dots, s_i^{l,T}] \in \{0,1\}^{T N_l}`;
* layer RDM :math:`D^l_{ij} = \lVert v_i^l - v_j^l \rVert_1 / (T N_l)` (normalised Hamming distance);
* network RDM :math:`D = \frac{1}{L}\sum_l D^l`.

Scores (registered in :data:`FITNESSES`, higher is better):

``rdm`` (default) -- label-RDM agreement of the readout representation times its effective dimensionality:
    let :math:`z_i = \sum_t z_i^t \in \mathbb{R}^W` be the input of the linear readout for sample ``i`` (the
    last cell's output after global average pooling, summed over time), :math:`D^z_{ij} = \lVert z_i - z_j
    \rVert_2^2` its (squared Euclidean) RDM, :math:`H = I - \frac{1}{B}\mathbf{1}\mathbf{1}^\top` and
    :math:`K = -\tfrac12 H D^z H` (the centred Gram matrix, classical MDS). With the reference kernel
    :math:`G = -\tfrac12 H R H` of the label RDM :math:`R_{ij} = [y_i \ne y_j]` (i.e. :math:`H Y Y^\top H`
    for one-hot :math:`Y`),
    :math:`F = \mathrm{CKA}(K, G) \cdot \mathrm{PR}(K)`, with linear CKA
    :math:`\mathrm{CKA}(K, G) = \langle K, G\rangle_F / (\lVert K\rVert_F \lVert G\rVert_F)` and the
    participation ratio :math:`\mathrm{PR}(K) = (\mathrm{tr}\,K)^2 / \lVert K\rVert_F^2
    = (\sum_k \lambda_k)^2 / \sum_k \lambda_k^2 \in [1, \min(B-1, W)]` (effective number of dimensions of the
    representational geometry). The first factor asks that the RDM already reflect the classes; the second
    that the geometry the readout sees be high-dimensional (a network that collapses its inputs onto few
    directions, or is silent, cannot learn quickly). A silent / constant readout input scores 0.
    ``reference="input"`` replaces :math:`G` by the centred Gram of the raw (time-summed) input; a model
    reference uses :math:`G = -\tfrac12 H D H` from that model's network RDM ``D`` below (Hamming distance of
    binary patterns is their squared Euclidean distance, so this is a Gram matrix). Needs ``readout`` (the
    evaluator records the readout input).

``rdm_spikes`` (the former default) -- agreement of the spike-pattern RDM with a reference RDM :math:`R`:
    :math:`F = \mathrm{corr}(\{D_{ij}\}_{i<j}, \{R_{ij}\}_{i<j})` (Pearson; ``method="spearman"`` ranks first).
    ``reference="labels"`` (default) uses the label RDM :math:`R_{ij} = [y_i \ne y_j]`, so ``F`` is the
    point-biserial correlation: large when different classes are far apart and same-class samples close;
    ``reference="input"`` uses the RDM of the raw input; a ``torch.nn.Module`` reference (e.g. a trained
    model) uses the network RDM of that model's spiking layers. A constant RDM (silent network) scores 0.

``dissimilarity`` -- label-free pattern dissimilarity (BrainCog MSE-NAS ``obj.LSP`` ``Cm``, normalised):
    :math:`F = \frac{1}{B(B-1)} \sum_{i \ne j} \frac{1}{L T} \sum_{l,t} \lVert s_i^{l,t} - s_j^{l,t}\rVert_1 / N_l`,
    i.e. the mean off-diagonal entry of :math:`D`. (BrainCog sums raw L1 distances; we normalise by ``N_l``
    so wide layers do not dominate.)

``snasnet`` -- SNASNet's sparsity-aware Hamming kernel log-determinant (Kim et al., ECCV 2022):
    with firing rate :math:`r_i = |s_i^{l,t}|/N_l` and Hamming distance :math:`d_H(i,j)`,
    :math:`K^{l,t}_{ij} = N_l - \frac{\alpha\, d_H(i,j)}{N_l [r_i(1-r_j) + (1-r_i) r_j] + 10^{-3}}`,
    :math:`\alpha = 0.5`; :math:`F = \log\lvert\det \bar K\rvert` with :math:`\bar K` the mean of
    :math:`K^{l,t}` over layers and steps (as the released code averages over hook calls).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from neurosynth.registry import Registry

FITNESSES: Registry[Callable[..., float]] = Registry("fitness")


def layer_patterns(records: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """``[B, T*N_l]`` binary float patterns for every recorded layer ``[T, B, ...]``."""
    out = []
    for r in records.values():
        r = r.detach()
        T, B = r.shape[:2]
        out.append((r > 0).float().permute(1, 0, *range(2, r.dim())).reshape(B, -1))
    return out


def hamming_rdm(v: torch.Tensor) -> torch.Tensor:
    """Normalised Hamming RDM of binary patterns ``v [B, D]``: ``D_ij = |v_i - v_j|_1 / D``."""
    v = v.double()
    d = v @ (1 - v).T + (1 - v) @ v.T
    return d / max(v.shape[1], 1)


def network_rdm(records: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the layer RDMs (see module docstring)."""
    pats = layer_patterns(records)
    if not pats:
        raise ValueError("no spiking layers were recorded; the model must return (out, records) with record=True")
    return torch.stack([hamming_rdm(p) for p in pats]).mean(0)


def label_rdm(y: torch.Tensor) -> torch.Tensor:
    """``R_ij = 1`` if the labels differ, else 0."""
    y = y.reshape(-1)
    return (y[:, None] != y[None, :]).double()


def euclidean_rdm(x: torch.Tensor) -> torch.Tensor:
    """RDM of raw inputs ``[T, B, ...]`` (summed over time): Euclidean distances between samples."""
    v = x.detach().double().sum(0).reshape(x.shape[1], -1)
    return torch.cdist(v, v)


def _upper(m: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(m.shape[0], m.shape[1], offset=1)
    return m[i, j]


def _rank(v: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share their mean rank), as Spearman's rho needs."""
    order = torch.argsort(v, stable=True)
    sv = v[order]
    ranks = torch.empty_like(v)
    n = v.numel()
    pos = torch.arange(n, dtype=v.dtype)
    # group equal values
    change = torch.ones(n, dtype=torch.bool)
    change[1:] = sv[1:] != sv[:-1]
    starts = torch.nonzero(change).flatten().tolist() + [n]
    for a, b in zip(starts[:-1], starts[1:]):
        ranks[order[a:b]] = pos[a:b].mean()
    return ranks


def rdm_correlation(a: torch.Tensor, b: torch.Tensor, method: str = "pearson") -> float:
    """Correlation of the upper triangles of two RDMs; 0 when either is constant."""
    x, y = _upper(a).double(), _upper(b).double()
    if method == "spearman":
        x, y = _rank(x), _rank(y)
    elif method != "pearson":
        raise ValueError(f"method must be 'pearson' or 'spearman'; got {method!r}")
    x, y = x - x.mean(), y - y.mean()
    den = float(x.norm() * y.norm())
    return 0.0 if den == 0.0 else float((x @ y) / den)


@FITNESSES.register("rdm_spikes")
def rdm_agreement(records, *, y=None, x=None, reference="labels", method: str = "pearson",
                  reference_records=None, **_) -> float:
    """Option (a), former default: agreement of the spike-pattern network RDM with a reference RDM (module
    docstring, ``rdm_spikes``)."""
    D = network_rdm(records)
    if reference_records is not None:
        R = network_rdm(reference_records)
    elif reference == "labels":
        if y is None:
            raise ValueError("the 'rdm_spikes' fitness with reference='labels' needs the labels of the batch")
        R = label_rdm(y)
    elif reference == "input":
        if x is None:
            raise ValueError("the 'rdm' fitness with reference='input' needs the input batch")
        R = euclidean_rdm(x)
    else:
        raise ValueError(f"reference must be 'labels', 'input' or a reference model; got {reference!r}")
    return rdm_correlation(D, R, method)


def centred_gram_from_rdm(D: torch.Tensor) -> torch.Tensor:
    """``K = -1/2 H D H`` (classical MDS) for a squared-Euclidean RDM ``D [B, B]``; ``H`` is the centring matrix."""
    D = D.double()
    B = D.shape[0]
    H = torch.eye(B, dtype=D.dtype) - 1.0 / B
    return -0.5 * H @ D @ H


def linear_cka(K: torch.Tensor, G: torch.Tensor) -> float:
    """``<K, G>_F / (|K|_F |G|_F)`` of two centred Gram matrices; 0 when either is zero."""
    den = float(K.norm() * G.norm())
    return 0.0 if den == 0.0 else float((K * G).sum() / den)


def participation_ratio(K: torch.Tensor) -> float:
    """Effective dimensionality ``(tr K)^2 / |K|_F^2`` of a centred Gram matrix (0 when ``K = 0``)."""
    den = float(K.norm()) ** 2
    return 0.0 if den == 0.0 else float(torch.trace(K)) ** 2 / den


def readout_features(readout: torch.Tensor) -> torch.Tensor:
    """``[B, W]`` time-summed readout input from ``[T, B, W]`` (or ``[T, B, ...]``, flattened)."""
    if readout.dim() < 3:
        raise ValueError(f"readout must be time-first [T, B, W]; got shape {tuple(readout.shape)}")
    return readout.detach().double().sum(0).reshape(readout.shape[1], -1)


@FITNESSES.register("rdm")
def readout_rdm_capacity(records, *, y=None, x=None, readout=None, reference="labels",
                         reference_records=None, **_) -> float:
    """Option (a), default: ``CKA(K, G) * PR(K)`` of the readout representation (module docstring, ``rdm``)."""
    if readout is None:
        raise ValueError("the 'rdm' fitness needs the readout input [T, B, W] (pass readout=...; "
                         "RDMFitnessEvaluator records it), or use fitness 'rdm_spikes'")
    z = readout_features(readout)
    K = centred_gram_from_rdm(torch.cdist(z, z).pow(2))
    if reference_records is not None:
        G = centred_gram_from_rdm(network_rdm(reference_records))
    elif reference == "labels":
        if y is None:
            raise ValueError("the 'rdm' fitness with reference='labels' needs the labels of the batch")
        G = centred_gram_from_rdm(label_rdm(y))
    elif reference == "input":
        if x is None:
            raise ValueError("the 'rdm' fitness with reference='input' needs the input batch")
        v = x.detach().double().sum(0).reshape(x.shape[1], -1)
        G = centred_gram_from_rdm(torch.cdist(v, v).pow(2))
    else:
        raise ValueError(f"reference must be 'labels', 'input' or a reference model; got {reference!r}")
    return linear_cka(K, G) * participation_ratio(K)


@FITNESSES.register("dissimilarity")
def pattern_dissimilarity(records, **_) -> float:
    """Option (b): label-free mean pattern dissimilarity (module docstring)."""
    D = network_rdm(records)
    B = D.shape[0]
    return float(D.sum() / (B * (B - 1)))


@FITNESSES.register("snasnet")
def snasnet_logdet(records, *, alpha: float = 0.5, **_) -> float:
    """Option (c): SNASNet sparsity-aware Hamming-kernel log-determinant (module docstring)."""
    K = None
    n = 0
    for r in records.values():
        r = r.detach()
        T, B = r.shape[:2]
        for t in range(T):
            x = (r[t].reshape(B, -1) > 0).double()
            N = x.shape[1]
            rate = x.mean(1, keepdim=True)
            norm = (rate @ (1 - rate).T + (1 - rate) @ rate.T) * N
            dH = x @ (1 - x).T + (1 - x) @ x.T
            k = N - alpha / (norm + 1e-3) * dH
            K = k if K is None else K + k
            n += 1
    if K is None:
        raise ValueError("no spiking layers were recorded")
    sign, logdet = torch.linalg.slogdet(K / n)
    return float(logdet) if float(sign) != 0 else -math.inf


def score(name: str, records, **kw) -> float:
    """Compute the registered fitness ``name``."""
    return float(FITNESSES.get(name)(records, **kw))
