r"""Elementwise ATen graphs (from :mod:`neurosynth._ops.custom.tracing`) as straight-line code: C++ or Triton.

:func:`lower` walks a graph once and writes one local variable per node, in a dialect (:class:`Cpp` or
:class:`Triton`); the kernels' templates (:mod:`~neurosynth._ops.custom.cpu`, :mod:`~neurosynth._ops.custom.triton`)
put those statements inside their per-neuron time loop. Each supported ATen op is one entry of :data:`ATEN_LOWERINGS`
(a registry: a new op is one more entry). Arithmetic is written as the eager CPU kernels compute it, one rounding
per operation (``pow(x, 2)`` is ``x*x``, ``pow(x, 0.5)`` is ``sqrt``, Python numbers become constants of the
compute dtype, comparisons are strict as written), and the C++ is compiled without FMA contraction, so float32
results are bit-identical to the reference loop for ``+ - * /``, ``pow(x, 2 | 3 | -1)``, comparisons,
``where``, ``clamp``; ``sqrt``, ``exp``, ``tanh``... call the C library (C++) or Triton's (CUDA), while torch's
vectorised CPU kernels of these are not correctly rounded, so they agree to about one ulp
(:attr:`~neurosynth._ops.custom.tracing.Captured.inexact_ops`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import fx

from .tracing import TRACE_LEN, CaptureError


class Cpp:
    """C++ (scalar code inside a loop over neurons; ``scalar_t`` is the compute type)."""

    name = "cpp"

    @staticmethod
    def const(c) -> str:
        if isinstance(c, bool):
            return "true" if c else "false"
        c = float(c)
        if math.isnan(c):
            return "std::numeric_limits<scalar_t>::quiet_NaN()"
        if math.isinf(c):
            return ("" if c > 0 else "-") + "std::numeric_limits<scalar_t>::infinity()"
        return f"scalar_t({c!r})"

    @staticmethod
    def assign(var: str, expr: str, is_bool: bool) -> str:
        return f"const {'bool' if is_bool else 'scalar_t'} {var} = {expr};"

    @classmethod
    def const_block(cls, c) -> str:
        return cls.const(c)

    @staticmethod
    def where(c, a, b):
        return f"({c} ? {a} : {b})"

    @staticmethod
    def to_float(c):
        return f"({c} ? scalar_t(1) : scalar_t(0))"

    @staticmethod
    def fn(name, *args):
        return {"exp": "std::exp", "log": "std::log", "sqrt": "std::sqrt", "tanh": "std::tanh", "sin": "std::sin",
                "cos": "std::cos", "abs": "std::abs", "floor": "std::floor", "ceil": "std::ceil", "pow": "std::pow",
                "expm1": "std::expm1", "log1p": "std::log1p", "isnan": "std::isnan"}[name] + f"({', '.join(args)})"

    @staticmethod
    def div(a, b):
        return f"({a} / {b})"

    land, lor, lnot = "&&", "||", "!"


class Triton:
    """Triton (block-wide expressions inside the kernel's time loop; ``ACC`` is the compute dtype)."""

    name = "triton"

    @staticmethod
    def const(c) -> str:
        if isinstance(c, bool):
            return "True" if c else "False"
        c = float(c)
        if math.isnan(c):
            return "float('nan')"
        if math.isinf(c):
            return "float('inf')" if c > 0 else "float('-inf')"
        return f"{c!r}"

    @staticmethod
    def assign(var: str, expr: str, is_bool: bool) -> str:
        return f"{var} = {expr}"

    @classmethod
    def const_block(cls, c) -> str:
        if isinstance(c, bool):
            return f"tl.full([BLOCK], {int(c)}, tl.int1)"
        return f"tl.full([BLOCK], {cls.const(c)}, ACC)"

    @staticmethod
    def where(c, a, b):
        return f"tl.where({c}, {a}, {b})"

    @staticmethod
    def to_float(c):
        return f"tl.where({c}, 1.0, 0.0).to(ACC)"

    @staticmethod
    def fn(name, *args):
        if name == "isnan":
            return f"({args[0]} != {args[0]})"
        if name == "pow":
            return f"libdevice_pow({args[0]}, {args[1]})"
        if name == "sqrt":
            return f"tl.sqrt_rn({args[0]})"
        return {"exp": "tl.exp", "log": "tl.log", "tanh": "_tanh", "sin": "tl.sin", "cos": "tl.cos",
                "abs": "tl.abs", "floor": "tl.floor", "ceil": "tl.ceil", "expm1": "_expm1",
                "log1p": "_log1p"}[name] + f"({', '.join(args)})"

    @staticmethod
    def div(a, b):
        return f"tl.div_rn({a}, {b})"

    land, lor, lnot = "&", "|", "~"


class _Ctx:
    def __init__(self, d, env):
        self.d = d
        self.env = env  # fx node -> (expression, is_bool)

    def v(self, a) -> str:
        if isinstance(a, fx.Node):
            return self.env[a][0]
        if isinstance(a, (bool, int, float)):
            return self.d.const(a)
        raise CaptureError(f"unsupported argument {a!r}")

    def is_bool(self, a) -> bool:
        if isinstance(a, fx.Node):
            return self.env[a][1]
        return isinstance(a, bool)

    def f(self, a) -> str:
        """``a`` as a float (a boolean operand of arithmetic becomes 0/1)."""
        return self.d.to_float(self.v(a)) if self.is_bool(a) else self.v(a)


def _binop(sym):
    def op(c, a, b, **kw):
        alpha = kw.get("alpha", 1)
        if alpha not in (1, -1) and sym in "+-":
            raise CaptureError(f"add/sub with alpha={alpha}")
        if alpha == -1:
            sym2 = "-" if sym == "+" else "+"
            return f"({c.f(a)} {sym2} {c.f(b)})", False
        return f"({c.f(a)} {sym} {c.f(b)})", False
    return op


def _cmp(sym):
    return lambda c, a, b: (f"({c.f(a)} {sym} {c.f(b)})", True)


def _pow(c, a, e):
    if isinstance(e, fx.Node):
        return c.d.fn("pow", c.f(a), c.f(e)), False
    x = c.f(a)
    e = float(e)
    table = {2.0: f"({x} * {x})", 3.0: f"(({x} * {x}) * {x})", 1.0: x, 0.5: c.d.fn("sqrt", x),
             -0.5: c.d.div(c.d.const(1.0), c.d.fn("sqrt", x)), -1.0: c.d.div(c.d.const(1.0), x),
             -2.0: c.d.div(c.d.const(1.0), f"({x} * {x})")}
    if e == 0.0:
        return c.d.const(1.0), False
    if e in table:
        return table[e], False
    return c.d.fn("pow", x, c.d.const(e)), False


def _rpow(c, base, e):
    return c.d.fn("pow", c.f(base), c.f(e)), False


def _clamp(c, a, lo=None, hi=None):
    x = c.f(a)
    if lo is not None:  # NaN stays NaN (the comparison is false), as torch's clamp
        x = c.d.where(f"({x} < {c.f(lo)})", c.f(lo), x)
    if hi is not None:
        x = c.d.where(f"({x} > {c.f(hi)})", c.f(hi), x)
    return x, False


def _maxmin(sym):
    def op(c, a, b):
        x, y = c.f(a), c.f(b)
        pick = c.d.where(f"({x} {sym} {y})", x, y)
        nan = f"({c.d.fn('isnan', x)} {c.d.lor} {c.d.fn('isnan', y)})"
        return c.d.where(nan, f"({x} + {y})", pick), False
    return op


def _where(c, cond, a, b):
    both_bool = c.is_bool(a) and c.is_bool(b)
    if both_bool:
        return c.d.where(c.v(cond), c.v(a), c.v(b)), True
    return c.d.where(c.v(cond), c.f(a), c.f(b)), False


def _to(c, a, dtype=None, **kw):
    if dtype is None or dtype == torch.bool and c.is_bool(a):
        return c.v(a), c.is_bool(a)
    if dtype == torch.bool:
        return f"({c.v(a)} != {c.d.const(0.0)})", True
    if not dtype.is_floating_point:
        raise CaptureError(f"a conversion to {dtype}")
    if dtype != c.dtype:
        raise CaptureError(f"a conversion to {dtype} inside a {c.dtype} step")
    return c.f(a), False


def _const_like(value):
    def op(c, *a, **kw):
        return c.d.const_block(value), False
    return op


def _full_like(c, a, value, **kw):
    return c.d.const_block(value), isinstance(value, bool)


def _ident(c, a, *rest, **kw):
    return c.v(a), c.is_bool(a)


def _unary(name):
    return lambda c, a: (c.d.fn(name, c.f(a)), False)


def _logic(kind):
    def op(c, a, b=None):
        if kind == "not":
            return f"({c.d.lnot}{c.v(a)})" if c.is_bool(a) else f"({c.f(a)} == {c.d.const(0.0)})", True
        sym = c.d.land if kind == "and" else c.d.lor
        return f"({c.v(a)} {sym} {c.v(b)})", True
    return op


def _sigmoid(c, a):
    x = c.f(a)
    return c.d.div(c.d.const(1.0), f"({c.d.const(1.0)} + {c.d.fn('exp', f'(-{x})')})"), False


#: aten overload packet name -> lowering ``(ctx, *args, **kwargs) -> (expression, is_bool)``
ATEN_LOWERINGS: dict[str, Callable] = {
    "add": _binop("+"), "sub": _binop("-"), "mul": _binop("*"),
    "rsub": lambda c, a, b, alpha=1: _binop("-")(c, b, a, alpha=alpha),
    "div": lambda c, a, b, **kw: (_raise(f"div with rounding_mode={kw['rounding_mode']!r}") if kw.get("rounding_mode")
                                  else (c.d.div(c.f(a), c.f(b)), False)),
    "neg": lambda c, a: (f"(-{c.f(a)})", False),
    "reciprocal": lambda c, a: (c.d.div(c.d.const(1.0), c.f(a)), False),
    "rsqrt": lambda c, a: (c.d.div(c.d.const(1.0), c.d.fn("sqrt", c.f(a))), False),
    "pow": lambda c, a, e: _rpow(c, a, e) if not isinstance(a, fx.Node) else _pow(c, a, e),
    "exp": _unary("exp"), "log": _unary("log"), "sqrt": _unary("sqrt"), "tanh": _unary("tanh"),
    "sin": _unary("sin"), "cos": _unary("cos"), "abs": _unary("abs"), "floor": _unary("floor"),
    "ceil": _unary("ceil"), "expm1": _unary("expm1"), "log1p": _unary("log1p"),
    "sigmoid": _sigmoid,
    "relu": lambda c, a: _clamp(c, a, 0.0),
    "clamp": lambda c, a, lo=None, hi=None, **kw: _clamp(c, a, kw.get("min", lo), kw.get("max", hi)),
    "clamp_min": lambda c, a, lo: _clamp(c, a, lo),
    "clamp_max": lambda c, a, hi: _clamp(c, a, None, hi),
    "maximum": _maxmin(">"), "minimum": _maxmin("<"),
    "where": _where,
    "gt": _cmp(">"), "ge": _cmp(">="), "lt": _cmp("<"), "le": _cmp("<="), "eq": _cmp("=="), "ne": _cmp("!="),
    "logical_and": _logic("and"), "logical_or": _logic("or"), "logical_not": _logic("not"),
    "bitwise_and": _logic("and"), "bitwise_or": _logic("or"), "bitwise_not": _logic("not"),
    "_to_copy": _to, "to": _to, "type_as": lambda c, a, b: (c.f(a), False),
    "scalar_tensor": lambda c, value, **kw: (c.d.const_block(value), isinstance(value, bool)),
    "zeros_like": _const_like(0.0), "ones_like": _const_like(1.0), "full_like": _full_like,
    "detach": _ident, "alias": _ident, "clone": _ident, "lift_fresh_copy": _ident, "view": _ident,
    "_unsafe_view": _ident, "reshape": _ident, "expand": _ident, "contiguous": _ident,
    "sign": lambda c, a: (c.d.where(f"({c.f(a)} > {c.d.const(0.0)})", c.d.const(1.0),
                                    c.d.where(f"({c.f(a)} < {c.d.const(0.0)})", c.d.const(-1.0), c.f(a))), False),
    "threshold_backward": lambda c, g, x, th: (c.d.where(f"({c.f(x)} <= {c.f(th)})", c.d.const(0.0), c.f(g)), False),
    "sigmoid_backward": lambda c, g, y: (f"(({c.f(g)} * ({c.d.const(1.0)} - {c.f(y)})) * {c.f(y)})", False),
    "tanh_backward": lambda c, g, y: (f"({c.f(g)} * ({c.d.const(1.0)} - ({c.f(y)} * {c.f(y)})))", False),
}


ATEN_LOWERINGS["sgn"] = ATEN_LOWERINGS["sign"]  # abs()'s derivative
ATEN_LOWERINGS["masked_fill"] = lambda c, a, mask, value: _where(c, mask, value, a)


def _raise(msg):
    raise CaptureError(msg)


def _check_shape(node: fx.Node) -> None:
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise CaptureError(f"{node.target} does not produce a tensor")
    if tuple(val.shape) not in ((TRACE_LEN,), ()):
        raise CaptureError(f"{node.target} is not elementwise (shape {tuple(val.shape)})")
    if not (val.dtype.is_floating_point or val.dtype == torch.bool):
        raise CaptureError(f"{node.target} produces a {val.dtype} tensor")


def lower(gm: fx.GraphModule, dialect, inputs: list[str | None], dtype: torch.dtype, prefix: str = "t"
          ) -> tuple[list[str], list[str]]:
    """Statements computing ``gm`` from the expressions ``inputs`` (one per placeholder; ``None`` for one the
    graph does not read) and the output expressions (always float)."""
    env: dict[fx.Node, tuple[str, bool]] = {}
    ctx = _Ctx(dialect, env)
    ctx.dtype = dtype
    lines: list[str] = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node, expr in zip(placeholders, inputs):
        env[node] = (expr or dialect.const(0.0), False)
    outputs: list[str] = []
    for i, node in enumerate(gm.graph.nodes):
        if node.op == "placeholder":
            continue
        if node.op == "output":
            outs = node.args[0]
            outputs = [ctx.f(o) if isinstance(o, fx.Node) else dialect.const(o) for o in outs]
            break
        if node.op != "call_function":
            raise CaptureError(f"{node.op} {node.target} (a tensor constant or module call in a hook)")
        packet = getattr(node.target, "overloadpacket", None)
        name = getattr(packet, "__name__", str(node.target))
        if name.endswith("_") and not name.startswith("__"):
            raise CaptureError(f"in-place op aten.{name} (hooks must return new tensors)")
        lowering = ATEN_LOWERINGS.get(name)
        if lowering is None:
            raise CaptureError(f"aten.{name} is not an elementwise op the kernel generator knows")
        _check_shape(node)
        expr, is_bool = lowering(ctx, *node.args, **node.kwargs)
        want_bool = node.meta["val"].dtype == torch.bool  # the value's type as torch computed it
        if want_bool and not is_bool:  # e.g. bool * bool (torch keeps bool)
            expr, is_bool = f"({expr} != {dialect.const(0.0)})", True
        elif is_bool and not want_bool:
            expr, is_bool = dialect.to_float(expr), False
        var = f"{prefix}{i}"
        lines.append(dialect.assign(var, expr, is_bool))
        env[node] = (var, is_bool)
    return lines, outputs
