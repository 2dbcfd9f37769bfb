"""Apply learning rules to any model: ``convert`` (one rule everywhere), ``assign`` (per layer),
``step``/``attach`` (per-training-step state), ``rule_map`` and alignment metrics."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn

from .functional import CaptureError, DFAContext
from .layers import RULES, BioConv2d, BioLayer, BioLinear, get_rule


def _to_bio(mod: nn.Module, rule, generator, output_dim) -> BioLayer:
    """A Bio layer sharing ``mod``'s weight and bias Parameters (no copy)."""
    if isinstance(mod, BioLayer):
        mod.set_rule(rule, generator=generator, output_dim=output_dim)
        return mod
    if isinstance(mod, nn.Linear):
        new = BioLinear(mod.in_features, mod.out_features, mod.bias is not None, rule="bp", device="meta")
    elif isinstance(mod, nn.Conv2d):
        if mod.padding_mode != "zeros":
            raise ValueError(f"cannot convert a Conv2d with padding_mode='{mod.padding_mode}'; only 'zeros'")
        new = BioConv2d(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                        mod.dilation, mod.groups, mod.bias is not None, rule="bp", device="meta")
    else:
        raise ValueError(f"learning rules apply to nn.Linear / nn.Conv2d, not {type(mod).__name__}")
    new.weight = mod.weight
    new.bias = mod.bias
    new.train(mod.training)
    new._setup_rule(rule, generator, output_dim)
    return new


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _infer_output_dim(model: nn.Module) -> int | None:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return None if last is None else int(last.out_features)


def _install_dfa(model: nn.Module) -> None:
    """Give every DFA layer a shared :class:`DFAContext` and capture the output error on ``model``."""
    layers = [m for m in model.modules() if isinstance(m, BioLayer) and m.rule.dfa]
    if not layers:
        return
    ctx = getattr(model, "_dfa_context", None)
    if ctx is None:
        ctx = DFAContext()
        model._dfa_context = ctx

        def hook(module, inputs, out):
            if not isinstance(out, torch.Tensor):
                raise RuntimeError("DFA needs the network to return one tensor of outputs (logits)")
            return CaptureError.apply(out, module._dfa_context) if torch.is_grad_enabled() else out

        model._dfa_hook = model.register_forward_hook(hook)
    for m in layers:
        m._dfa_ctx = ctx


def convert(model: nn.Module, rule: str, *, output_dim: int | None = None,
            generator: torch.Generator | None = None, exclude: tuple[str, ...] = ()) -> nn.Module:
    """Switch every ``Linear``/``Conv2d`` of ``model`` (in place) to ``rule``; returns ``model``.

    Weights are shared with the original layers (not copied); feedback buffers are freshly drawn with
    ``generator``. ``exclude`` lists module names to leave untouched. ``output_dim`` is required for
    ``dfa`` (default: ``out_features`` of the last ``Linear``). A bare ``nn.Linear``/``nn.Conv2d`` passed
    as ``model`` is returned converted.
    """
    get_rule(rule)
    if isinstance(model, (nn.Linear, nn.Conv2d)):
        new = _to_bio(model, rule, generator, output_dim if output_dim is not None else _infer_output_dim(model))
        _install_dfa(new)
        return new
    names = [n for n, m in model.named_modules() if n and isinstance(m, (nn.Linear, nn.Conv2d))
             and not any(n == e or n.startswith(e + ".") for e in exclude)]
    return assign(model, {n: rule for n in names}, output_dim=output_dim, generator=generator)


def assign(model: nn.Module, rules: dict[str, str], *, output_dim: int | None = None,
           generator: torch.Generator | None = None) -> nn.Module:
    """Per-layer rules: ``assign(model, {"features.0": "fa", "classifier": "usf"})`` (in place).

    Names are ``model.named_modules()`` names of ``Linear``/``Conv2d`` layers; unknown names or other
    module types raise ``ValueError``.
    """
    modules = dict(model.named_modules())
    for name, rule in rules.items():
        get_rule(rule)
        if name not in modules:
            layers = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
            raise ValueError(f"assign: no module named '{name}'; Linear/Conv2d layers are: {layers[:20]}")
        if not isinstance(modules[name], (nn.Linear, nn.Conv2d)):
            raise ValueError(f"assign: '{name}' is a {type(modules[name]).__name__}, not a Linear/Conv2d")
    if output_dim is None and any(get_rule(r).dfa for r in rules.values()):
        output_dim = _infer_output_dim(model)
    for name, rule in rules.items():
        _set_submodule(model, name, _to_bio(modules[name], rule, generator, output_dim))
    _install_dfa(model)
    return model


def rule_map(model: nn.Module) -> dict[str, str]:
    """``{layer name: rule name}`` for every rule-carrying layer (JSON, to rebuild with :func:`assign`)."""
    return {n: m.rule.name for n, m in model.named_modules() if isinstance(m, BioLayer)}


def step(model: nn.Module) -> None:
    """Advance per-training-step state once: brSF redraws ``R``, Hebbian layers apply their update.

    Call it right after ``optimizer.step()`` (or use :func:`attach`). Never call it on evaluation passes.
    """
    for m in model.modules():
        fn = getattr(m, "step_rule", None)
        if callable(fn):
            fn()


def attach(model: nn.Module, optimizer: torch.optim.Optimizer):
    """Run :func:`step` after every ``optimizer.step()`` (a post-step hook); returns the hook handle."""

    def hook(opt, args, kwargs):
        step(model)

    return optimizer.register_step_post_hook(hook)


@contextlib.contextmanager
def true_gradients(model: nn.Module):
    """Within the block, every rule-carrying layer backpropagates through its true weights ``W``.

    The forward pass is unchanged (rules only change the backward), so this gives the exact input
    gradient of the trained network, e.g. for honest white-box attacks. Feedback buffers are untouched.
    """
    layers = [m for m in model.modules() if isinstance(m, BioLayer)]
    old = [m.true_gradient for m in layers]
    for m in layers:
        m.true_gradient = True
    try:
        yield model
    finally:
        for m, o in zip(layers, old):
            m.true_gradient = o


def alignment_angle(layer: nn.Module) -> float:
    """Angle in degrees between the feedback matrix ``B`` and the forward weights (``B`` vs ``W^T`` in
    the paper's notation; both are stored with ``W``'s shape). 0 for BP, NaN for DFA (different shape)."""
    if not isinstance(layer, BioLayer) or layer.rule.name == "bp":
        return 0.0
    B = layer.feedback_matrix()
    W = layer.weight.detach()
    if B is None or B.shape != W.shape:
        return math.nan
    b, w = B.flatten().double(), W.flatten().double()
    denom = float(b.norm() * w.norm())
    if denom == 0:
        return math.nan
    cos = float(torch.dot(b, w)) / denom
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def alignment_angles(model: nn.Module) -> dict[str, float]:
    """:func:`alignment_angle` for every rule-carrying layer."""
    return {n: alignment_angle(m) for n, m in model.named_modules() if isinstance(m, BioLayer)}


def weight_ratio(layer: nn.Module) -> float:
    """``||B|| / ||W||`` (1 for BP)."""
    if not isinstance(layer, BioLayer) or layer.rule.name == "bp":
        return 1.0
    return float(layer.feedback_matrix().norm() / layer.weight.detach().norm().clamp_min(1e-12))


__all__ = ["RULES", "convert", "assign", "rule_map", "step", "attach", "true_gradients", "alignment_angle",
           "alignment_angles", "weight_ratio"]
