"""Bio-inspired attention variants beside standard scaled dot-product attention.

Functional kernels in :mod:`.functional`; drop-in modules (same call signature as
``torch.nn.functional.scaled_dot_product_attention``) in :mod:`.modules`, registered in :data:`ATTENTION`
by name: ``standard``, ``softmax_explicit``, ``competitive``, ``oscillatory``, ``gain``.
"""

from .functional import (
    competitive_attention,
    competitive_weights,
    gain_modulated_attention,
    oscillatory_attention,
    sdpa,
    softmax_attention,
    theta_gate,
)
from .modules import (
    ATTENTION,
    CompetitiveAttention,
    ExplicitSoftmaxAttention,
    GainModulatedAttention,
    MultiHeadAttention,
    OscillatoryGatedAttention,
    ScaledDotProductAttention,
)

__all__ = [
    "ATTENTION", "CompetitiveAttention", "ExplicitSoftmaxAttention", "GainModulatedAttention",
    "MultiHeadAttention", "OscillatoryGatedAttention", "ScaledDotProductAttention", "competitive_attention",
    "competitive_weights", "gain_modulated_attention", "oscillatory_attention", "sdpa", "softmax_attention",
    "theta_gate",
]
