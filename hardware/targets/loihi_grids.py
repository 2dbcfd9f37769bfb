"""Loihi 2's number grids (pure Python): 8-bit weights on a 64x grid, 17-bit threshold mantissas, 12-bit decays.

The one copy of these numbers: the target description (:mod:`.loihi`), the QAT layers (:mod:`.loihi_qat`), the Lava
exporter and the MSE-NAS lowering all read them from here. See :mod:`.loihi` for the sources.
"""

from __future__ import annotations

W_SCALE = 64  # exported weight = W_SCALE * float weight
W_STEP = 2  # exported weights are multiples of 2 (slayer quantize_8bit)
W_MIN, W_MAX = -256, 254  # integer range of exported weights
TH_SCALE = 64  # vThMant = TH_SCALE * threshold
VTH_MAX = (1 << 17) - 1  # 17-bit unsigned threshold mantissa
DECAY_UNITY = 4096  # 12-bit decays: decay constant = 4096 * (1 - factor)


def threshold_mant(threshold: float) -> int:
    """``vThMant = round(64 * threshold)``."""
    return int(round(float(threshold) * TH_SCALE))


def i_decay(alpha: float) -> int:
    """Current decay ``iDecay = round(4096 (1 - alpha))`` (netx/slayer convention; Lava ``du = iDecay - 1``)."""
    return int(round((1.0 - float(alpha)) * DECAY_UNITY))


def v_decay(beta: float) -> int:
    """Voltage decay ``vDecay = round(4096 (1 - beta))`` (Lava ``dv``)."""
    return int(round((1.0 - float(beta)) * DECAY_UNITY))


def snap_alpha(alpha: float) -> float:
    """The nearest current-decay factor Loihi can represent: ``1 - iDecay/4096`` with ``iDecay >= 1``."""
    return 1.0 - min(max(i_decay(alpha), 1), DECAY_UNITY) / DECAY_UNITY


def snap_beta(beta: float) -> float:
    """The nearest voltage-decay factor Loihi can represent: ``1 - vDecay/4096`` with ``vDecay <= 4095``."""
    return 1.0 - min(max(v_decay(beta), 0), DECAY_UNITY - 1) / DECAY_UNITY


def snap_threshold(threshold: float) -> float:
    """The nearest threshold on the ``1/64`` grid (at least ``1/64``, at most ``131071/64``)."""
    return min(max(threshold_mant(threshold), 1), VTH_MAX) / TH_SCALE


_SNAP = {"alpha": snap_alpha, "beta": snap_beta, "threshold": snap_threshold}


def snap(param: str, value: float) -> float:
    """A neuron parameter on Loihi's grid (``alpha``, ``beta``, ``threshold``; others unchanged)."""
    fn = _SNAP.get(param)
    return float(value) if fn is None else fn(value)
