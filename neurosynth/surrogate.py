r"""Surrogate gradients as value objects.

The forward pass of a spike is the Heaviside step :math:`S(x) = \mathbb{1}[x > 0]` (strictly greater, as in
snnTorch and Lava) applied to :math:`x = h - \vartheta`. The backward pass replaces :math:`S'(x)` by the
derivative of a smooth ``primitive``. Each surrogate is a frozen dataclass with named hyper-parameters:

- ``primitive(x)``: the smooth function whose derivative is the surrogate gradient,
- ``grad(x)``: the hand-written derivative (tested against autograd of ``primitive``),
- ``__call__(x)``: the spike with this surrogate in the backward pass.

Surrogates are registered in :data:`SURROGATES` and built by name with :func:`get_surrogate`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .registry import Registry

SURROGATES: Registry[type[Surrogate]] = Registry("surrogate")


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: Surrogate) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(x), None


@dataclass(frozen=True)
class Surrogate:
    """Base class. Subclasses define ``primitive`` and ``grad`` and register themselves."""

    name = "base"

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def grad(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFunction.apply(x, self)

    def to_dict(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}


def get_surrogate(spec: str | dict | Surrogate | None = "atan", **params) -> Surrogate:
    """Build a surrogate from a name (``"atan"``), a dict (``{"name": "atan", "alpha": 2.0}``) or pass one through."""
    if spec is None:
        spec = "atan"
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name")
        params = {**spec, **params}
    else:
        name = spec
    cls = SURROGATES.get(name)
    try:
        return cls(**params)
    except TypeError as e:
        fields = [f.name for f in dataclasses.fields(cls)]
        raise ValueError(f"surrogate '{name}' takes parameters {fields}; got {sorted(params)}") from e


@SURROGATES.register("fast_sigmoid")
@SURROGATES.register("superspike", overwrite=True)
@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    r"""SuperSpike (Zenke & Ganguli 2018): :math:`\sigma'(x) = 1/(1 + k|x|)^2`,
    primitive :math:`x / (1 + k|x|)`. Same gradient as snnTorch's ``fast_sigmoid(slope=k)``."""

    slope: float = 25.0
    name = "fast_sigmoid"

    def primitive(self, x):
        return x / (1 + self.slope * x.abs())

    def grad(self, x):
        return 1.0 / (1 + self.slope * x.abs()) ** 2


@SURROGATES.register("atan")
@dataclass(frozen=True)
class ATan(Surrogate):
    r"""Arc tangent (Fang et al. 2021): primitive :math:`\frac{1}{\pi}\arctan(\frac{\pi}{2}\alpha x) + \frac12`,
    :math:`\sigma'(x) = \frac{\alpha}{2} / (1 + (\frac{\pi}{2}\alpha x)^2)`. Same as snnTorch/SpikingJelly ``ATan``."""

    alpha: float = 2.0
    name = "atan"

    def primitive(self, x):
        return torch.atan(math.pi / 2 * self.alpha * x) / math.pi + 0.5

    def grad(self, x):
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)


@SURROGATES.register("sigmoid")
@dataclass(frozen=True)
class Sigmoid(Surrogate):
    r"""Logistic: primitive :math:`\mathrm{sig}(\alpha x)`, :math:`\sigma'(x) = \alpha\,\mathrm{sig}(\alpha x)(1-\mathrm{sig}(\alpha x))`."""

    alpha: float = 4.0
    name = "sigmoid"

    def primitive(self, x):
        return torch.sigmoid(self.alpha * x)

    def grad(self, x):
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)


@SURROGATES.register("triangle")
@dataclass(frozen=True)
class Triangle(Surrogate):
    r"""Triangle (Bellec et al. 2018, "pseudo-derivative"): :math:`\sigma'(x) = \max(0, 1 - |x|/w)/w`;
    primitive: the piecewise-quadratic ramp from 0 (x <= -w) to 1 (x >= w)."""

    width: float = 1.0
    name = "triangle"

    def primitive(self, x):
        w = self.width
        inner = 0.5 + x / w - torch.sign(x) * x * x / (2 * w * w)
        return torch.where(x <= -w, torch.zeros_like(x), torch.where(x >= w, torch.ones_like(x), inner))

    def grad(self, x):
        return torch.clamp(1 - x.abs() / self.width, min=0) / self.width


@SURROGATES.register("rectangular")
@dataclass(frozen=True)
class Rectangular(Surrogate):
    r"""Rectangular / boxcar (Wu et al. 2018): :math:`\sigma'(x) = \mathbb{1}[|x| < w/2]/w`;
    primitive: the clamped ramp :math:`\mathrm{clamp}(x/w + 1/2, 0, 1)`."""

    width: float = 1.0
    name = "rectangular"

    def primitive(self, x):
        return torch.clamp(x / self.width + 0.5, 0.0, 1.0)

    def grad(self, x):
        return (x.abs() < self.width / 2).to(x.dtype) / self.width


@SURROGATES.register("straight_through")
@dataclass(frozen=True)
class StraightThrough(Surrogate):
    r"""Straight-through estimator (Bengio et al. 2013): :math:`\sigma'(x) = s` everywhere; primitive :math:`s x`."""

    scale: float = 1.0
    name = "straight_through"

    def primitive(self, x):
        return self.scale * x

    def grad(self, x):
        return torch.full_like(x, self.scale)


def spike(x: torch.Tensor, surrogate: Surrogate | str = "atan") -> torch.Tensor:
    """Heaviside ``x > 0`` with the given surrogate gradient."""
    return get_surrogate(surrogate)(x)
